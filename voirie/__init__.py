"""voirie: geospatial incident-reporting pipeline for municipalities."""

__version__ = "0.1.0"
