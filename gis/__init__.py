"""voirie.gis: reference layers, snapping to streets, zone lookup and duplicate clustering."""
