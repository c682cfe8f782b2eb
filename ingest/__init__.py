"""voirie.ingest: read report sources into validated rows, quarantining the bad ones."""
