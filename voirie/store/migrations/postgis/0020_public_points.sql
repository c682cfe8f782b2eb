-- Public points of blurred incidents and reports (issue 17 item 5). The public sees an
-- incident of a blurred service at its public point (voirie.gis.blur); a public read that
-- filters on a box or a circle must select, count, order and page it by that point too,
-- or shrinking a box around it would find the exact one. The point depends on city.yaml
-- and the street network, which the database does not hold: the store writes it beside
-- the exact one (voirie.store.public_points) when a row is written or moved, and again
-- for every row when the city's blurring changes (its fingerprint, kept here).
-- NULL means "the same as the exact point": a city without blurring writes nothing more,
-- and the partial GiST indexes hold the blurred rows only (the public box reads the
-- exact index for the others). ``public_geom`` follows ``public_lon``/``public_lat``
-- (generated: the statements that write them are the same on both backends); adding it
-- rewrites the two tables once.
ALTER TABLE incidents ADD COLUMN public_lon double precision;
ALTER TABLE incidents ADD COLUMN public_lat double precision;
ALTER TABLE incidents ADD COLUMN public_geom geometry(Point, 4326)
  GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(public_lon, public_lat), 4326)) STORED;
ALTER TABLE reports ADD COLUMN public_lon double precision;
ALTER TABLE reports ADD COLUMN public_lat double precision;
ALTER TABLE reports ADD COLUMN public_geom geometry(Point, 4326)
  GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(public_lon, public_lat), 4326)) STORED;
CREATE INDEX incidents_public_geom ON incidents USING gist (public_geom)
  WHERE public_geom IS NOT NULL;
CREATE INDEX reports_public_geom ON reports USING gist (public_geom)
  WHERE public_geom IS NOT NULL;

-- Which blurring the stored public points were computed with, per city.
CREATE TABLE public_points (
  jurisdiction_id text PRIMARY KEY,
  fingerprint text NOT NULL,
  placed_at timestamptz NOT NULL
);
