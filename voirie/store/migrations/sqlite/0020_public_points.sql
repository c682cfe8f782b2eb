-- Public points of blurred incidents and reports (issue 17 item 5). The public sees an
-- incident of a blurred service at its public point (voirie.gis.blur); a public read that
-- filters on a box or a circle must select, count, order and page it by that point too,
-- or shrinking a box around it would find the exact one. The point depends on city.yaml
-- and the street network, which the database does not hold: the store writes it beside
-- the exact one (voirie.store.public_points) when a row is written or moved, and again
-- for every row when the city's blurring changes (its fingerprint, kept here).
-- NULL means "the same as the exact point": a city without blurring writes nothing more.
ALTER TABLE incidents ADD COLUMN public_lon REAL;
ALTER TABLE incidents ADD COLUMN public_lat REAL;
ALTER TABLE reports ADD COLUMN public_lon REAL;
ALTER TABLE reports ADD COLUMN public_lat REAL;

-- The blurred rows' public points, in R*Trees as the GeoPackage's index the exact ones
-- (the public box reads the exact R*Tree for the other rows). Not named rtree_<table>_<column>:
-- that name is the GeoPackage's for a geometry column's index.
CREATE VIRTUAL TABLE public_points_incidents USING rtree(id, minx, maxx, miny, maxy);
CREATE VIRTUAL TABLE public_points_reports USING rtree(id, minx, maxx, miny, maxy);

CREATE TRIGGER incidents_public_insert AFTER INSERT ON incidents
WHEN NEW.public_lon IS NOT NULL AND NEW.public_lat IS NOT NULL
BEGIN
  INSERT INTO public_points_incidents
  VALUES (NEW.id, NEW.public_lon, NEW.public_lon, NEW.public_lat, NEW.public_lat);
END;
CREATE TRIGGER incidents_public_update AFTER UPDATE OF public_lon, public_lat ON incidents
BEGIN
  DELETE FROM public_points_incidents WHERE id = OLD.id;
  INSERT INTO public_points_incidents
  SELECT NEW.id, NEW.public_lon, NEW.public_lon, NEW.public_lat, NEW.public_lat
  WHERE NEW.public_lon IS NOT NULL AND NEW.public_lat IS NOT NULL;
END;
CREATE TRIGGER incidents_public_delete AFTER DELETE ON incidents
BEGIN
  DELETE FROM public_points_incidents WHERE id = OLD.id;
END;

CREATE TRIGGER reports_public_insert AFTER INSERT ON reports
WHEN NEW.public_lon IS NOT NULL AND NEW.public_lat IS NOT NULL
BEGIN
  INSERT INTO public_points_reports
  VALUES (NEW.id, NEW.public_lon, NEW.public_lon, NEW.public_lat, NEW.public_lat);
END;
CREATE TRIGGER reports_public_update AFTER UPDATE OF public_lon, public_lat ON reports
BEGIN
  DELETE FROM public_points_reports WHERE id = OLD.id;
  INSERT INTO public_points_reports
  SELECT NEW.id, NEW.public_lon, NEW.public_lon, NEW.public_lat, NEW.public_lat
  WHERE NEW.public_lon IS NOT NULL AND NEW.public_lat IS NOT NULL;
END;
CREATE TRIGGER reports_public_delete AFTER DELETE ON reports
BEGIN
  DELETE FROM public_points_reports WHERE id = OLD.id;
END;

-- Which blurring the stored public points were computed with, per city.
CREATE TABLE public_points (
  jurisdiction_id TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  placed_at DATETIME NOT NULL
);
