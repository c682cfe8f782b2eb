"""Delivery: the notification outbox written with each change, the worker that delivers it
(webhooks, email), escalation of overdue incidents and the record of routing-rule versions.

Rules and SLAs themselves stay a pure stage in ``voirie.routing``; this package holds what
talks to the outside world and opens transactions.
"""
