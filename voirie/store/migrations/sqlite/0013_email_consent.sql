-- Consent of citizens' email addresses (issue 17 item 3: double opt-in, FixMyStreet's
-- confirmation of every alert). An address given on /signaler, with a follow or a "me
-- too", or in an Open311 POST is 'pending' until its owner opens the confirmation link,
-- then 'confirmed'; 'stopped' after "stop everything". Messages to an address that is not
-- confirmed wait in the outbox as 'held' and are released when it is confirmed.
-- link_token is the random secret of the address's unsubscribe and "is it fixed?" links
-- (kept as is: the worker writes it into each email; it only lets one stop emails to that
-- address or answer about an incident it follows). Confirmation tokens are kept hashed.
-- Personal data: not registered in gpkg_contents (GIS tools opening the file do not list it).
CREATE TABLE email_consents (
  jurisdiction_id TEXT NOT NULL,
  email TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'stopped')),
  language TEXT NOT NULL,
  link_token TEXT NOT NULL,
  asked_at DATETIME NOT NULL,
  confirmed_at DATETIME,
  stopped_at DATETIME,
  PRIMARY KEY (jurisdiction_id, email)
);
CREATE UNIQUE INDEX email_consents_link ON email_consents (jurisdiction_id, link_token);

CREATE TABLE email_confirmations (
  jurisdiction_id TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  email TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, token_hash)
);

-- "Stop emails about this incident" from one email's link: the address is no longer told
-- about that incident, whether it followed it or reported it.
CREATE TABLE email_optouts (
  jurisdiction_id TEXT NOT NULL,
  email TEXT NOT NULL,
  incident_id INTEGER NOT NULL,
  opted_out_at DATETIME NOT NULL,
  PRIMARY KEY (jurisdiction_id, email, incident_id)
);

-- Held messages are looked up by address when it is confirmed or stopped.
CREATE INDEX outbox_held ON outbox (jurisdiction_id, target) WHERE status = 'held';
