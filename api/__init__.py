"""voirie.api: the web application (Open311, OGC API Features, exports, maps, staff API)."""
