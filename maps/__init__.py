"""Publishing: the technicians' dispatch map and other rendered outputs."""
