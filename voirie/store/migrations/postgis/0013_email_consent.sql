-- Consent of citizens' email addresses (issue 17 item 3: double opt-in, FixMyStreet's
-- confirmation of every alert). An address given on /signaler, with a follow or a "me
-- too", or in an Open311 POST is 'pending' until its owner opens the confirmation link,
-- then 'confirmed'; 'stopped' after "stop everything". Messages to an address that is not
-- confirmed wait in the outbox as 'held' and are released when it is confirmed.
-- link_token is the random secret of the address's unsubscribe and "is it fixed?" links
-- (kept as is: the worker writes it into each email; it only lets one stop emails to that
-- address or answer about an incident it follows). Confirmation tokens are kept hashed.
CREATE TABLE email_consents (
  jurisdiction_id text NOT NULL,
  email text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'confirmed', 'stopped')),
  language text NOT NULL,
  link_token text NOT NULL,
  asked_at timestamptz NOT NULL,
  confirmed_at timestamptz,
  stopped_at timestamptz,
  PRIMARY KEY (jurisdiction_id, email)
);
CREATE UNIQUE INDEX email_consents_link ON email_consents (jurisdiction_id, link_token);

CREATE TABLE email_confirmations (
  jurisdiction_id text NOT NULL,
  token_hash text NOT NULL,
  email text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (jurisdiction_id, token_hash)
);

-- "Stop emails about this incident" from one email's link: the address is no longer told
-- about that incident, whether it followed it or reported it.
CREATE TABLE email_optouts (
  jurisdiction_id text NOT NULL,
  email text NOT NULL,
  incident_id bigint NOT NULL,
  opted_out_at timestamptz NOT NULL,
  PRIMARY KEY (jurisdiction_id, email, incident_id)
);

-- Held messages are looked up by address when it is confirmed or stopped.
CREATE INDEX outbox_held ON outbox (jurisdiction_id, target) WHERE status = 'held';
