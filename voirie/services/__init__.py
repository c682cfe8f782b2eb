"""Use cases: each opens its own unit of work (one transaction) and calls the pure stages
(ingest, gis, routing) and the store. The web API and the CLI only parse, authorise and
render around them.
"""
