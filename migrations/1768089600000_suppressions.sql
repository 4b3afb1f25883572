-- Up Migration

-- Addresses no email is sent to any more (SqlSuppressionList), shared by every server and worker.
CREATE TABLE suppressions (
  -- The mailbox key: the local part as given, '@', the domain in lowercase ASCII (A-labels), so
  -- the U-label and A-label forms of one mailbox are one row. ASCII only, so "C" orders it as
  -- the in-memory list does.
  address text COLLATE "C" PRIMARY KEY,
  reason text NOT NULL CHECK (reason IN ('bounce', 'complaint', 'unsubscribe', 'manual')),
  -- The email whose report put it there, or the operator's note.
  detail text,
  created_at timestamptz NOT NULL
);
-- `list`: newest first, ties in the addresses' byte order, paged by keyset.
CREATE INDEX suppressions_newest ON suppressions (created_at DESC, address DESC);

-- Down Migration

DROP TABLE suppressions;
