-- Up Migration

-- The email log: one row per email, its status folded from every event by evolveStatus.
CREATE TABLE emails (
  -- "C" collation: ids order by their bytes, as the in-memory log and the list cursors compare them.
  id text COLLATE "C" PRIMARY KEY,
  -- Acceptance time (the request's requestedAt), or the first event's time until it is recorded.
  created_at timestamptz NOT NULL,
  -- The folded EmailStatus, as evolveStatus returned it.
  state jsonb NOT NULL,
  -- Derived, so that it can never disagree with the state it is read from.
  status text GENERATED ALWAYS AS (state ->> 'status') STORED,
  -- Every recipient address, one a line, for the case-insensitive substring filter.
  recipients text NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  -- NULL while only events are known: a worker's news can arrive before the API's record.
  request jsonb,
  -- Bumped by every write; a write names the version it read (optimistic concurrency).
  version integer NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Newest first, a page at a time: keyset pagination on (created_at, id), and the retention purge.
CREATE INDEX emails_newest ON emails (created_at DESC, id DESC);
CREATE INDEX emails_status_newest ON emails (status, created_at DESC, id DESC);
CREATE INDEX emails_tags ON emails USING gin (tags);

-- Idempotency-Key and form nonces: who claimed a key, with which payload, and whether it finished.
CREATE TABLE idempotency_keys (
  key text PRIMARY KEY,
  -- SHA-256 of the payload, hex.
  digest text NOT NULL,
  email_id text NOT NULL,
  claimed_at timestamptz NOT NULL,
  completed boolean NOT NULL DEFAULT false
);
CREATE INDEX idempotency_keys_claimed_at ON idempotency_keys (claimed_at);

-- Which ids a provider accepted, so that a redelivered task is not sent twice.
CREATE TABLE delivery_ledger (
  email_id text PRIMARY KEY,
  provider_id text NOT NULL,
  sent_at timestamptz NOT NULL
);
CREATE INDEX delivery_ledger_sent_at ON delivery_ledger (sent_at);

-- Down Migration

DROP TABLE delivery_ledger;
DROP TABLE idempotency_keys;
DROP TABLE emails;
