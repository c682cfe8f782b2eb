"""voirie.routing: which team fixes an incident, with which priority and due date, and why."""
