"""The store's statements, written once over a ``Dialect``: one repository per concern
(tables, reports, incidents, links, citizens, outbox, rules, escalations), assembled into
the unit of work by ``unit.SqlUnitOfWork``; a backend supplies only its ``Session``."""
