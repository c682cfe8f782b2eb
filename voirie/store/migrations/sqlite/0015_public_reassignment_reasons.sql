-- Reassignments stored before issue 15 item 7 published who reassigned an incident and
-- why in the assignment's reason, which the public incidents layer shows as
-- routing_reason: "reassigned by <token name>: <reason>". Who and why stay staff-only
-- where they already are (assignments.actor, and the incident's "reassigned" event, whose
-- reason is "<old team> → <new team>: <reason>"); the public reason becomes the wording
-- the code has written since (voirie.city.REASSIGNED_WORDING["fr"]). SQL knows no city's
-- configured wording: a city publishing in another language rewrites these rows itself.
-- Only a staff reassignment (no rule_id) wrote this prefix and a colon; the wordings
-- written since have none.
UPDATE assignments
SET reason = 'réaffecté par le service de dispatch'
WHERE rule_id IS NULL AND reason LIKE 'reassigned by %: %';
