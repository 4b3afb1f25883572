-- Up Migration

-- Transports a provider throttled (Mailgun's 429, an SMTP 421 about a rate), paused for every
-- worker until the provider's Retry-After (SqlTransportPauses). One row per transport, holding
-- the end of its latest pause: an update only ever moves it later.
CREATE TABLE transport_pauses (
  transport text PRIMARY KEY,
  paused_until timestamptz NOT NULL
);

-- The pace of each transport with a rate (MAILGUN_RATE, SMTP_RATE; SqlSendPacer): the time the
-- next send slot is free, booked one slot at a time by every worker in one statement (a generic
-- cell rate algorithm), on the database's clock so that the workers' clocks do not matter.
CREATE TABLE send_pacing (
  transport text PRIMARY KEY,
  next_slot_at timestamptz NOT NULL
);

-- Down Migration

DROP TABLE send_pacing;
DROP TABLE transport_pauses;
