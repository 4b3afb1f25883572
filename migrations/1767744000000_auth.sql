-- Up Migration

-- API keys (SqlApiKeyStore). A key is never stored, only the SHA-256 of the whole key: a copy of
-- the table lets no one in. `key_id` is the random public part a request names its key by.
CREATE TABLE api_keys (
  key_id text PRIMARY KEY,
  -- What people revoke a key by.
  name text NOT NULL,
  -- What `list` shows so that a person can tell keys apart (`em_` and the key id).
  prefix text NOT NULL,
  -- SHA-256 of the whole key, lowercase hex.
  digest text NOT NULL,
  -- Each scope once, in the order of SCOPES (send, read, admin).
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL,
  -- Only ever moved forward (GREATEST): two servers touching a key race harmlessly.
  last_used_at timestamptz,
  -- A revoked key is kept for the record and never found again; NULL while the key is live.
  revoked_at timestamptz
);
-- One live key per name, so that a name says which key to revoke; a revoked key's name is free
-- for a new key. `create` names this index as its ON CONFLICT arbiter.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- The client addresses each key was used from: the primary key makes "first seen" one atomic
-- INSERT … ON CONFLICT DO NOTHING, so of two servers seeing a new address exactly one logs it.
CREATE TABLE api_key_addresses (
  key_id text NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
  address text NOT NULL,
  first_seen_at timestamptz NOT NULL,
  PRIMARY KEY (key_id, address)
);

-- The people who sign in to the web pages. Names compare exactly (no case folding).
CREATE TABLE operators (
  name text PRIMARY KEY,
  -- An argon2id PHC string (`$argon2id$v=19$m=…`), with its own salt and parameters.
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL
);

-- Web sessions, shared by every server. Found by the SHA-256 (hex) of the cookie's token, never
-- the token itself. The foreign key both refuses a session for an operator who does not exist and
-- ends every session of an operator who is removed.
CREATE TABLE sessions (
  digest text PRIMARY KEY,
  operator text NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  -- Idle expiry counts from here; only ever moved forward.
  last_seen_at timestamptz NOT NULL
);
-- The idle purge (purgeIdleSince) deletes by it.
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);

-- Request counters (rate-limiter-flexible's RateLimiterPostgres), exactly the table that library
-- creates by itself: created here instead (it is given `tableCreated: true`), so that the schema
-- has one owner and a server needs no CREATE right at run time. `expire` is the window's end in
-- milliseconds since the epoch (the servers' clocks, as the library counts).
CREATE TABLE rate_limits (
  key varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
-- The library deletes expired rows (`WHERE expire < $1`) every five minutes.
CREATE INDEX rate_limits_expire ON rate_limits (expire);

-- Down Migration

DROP TABLE rate_limits;
DROP TABLE sessions;
DROP TABLE operators;
DROP TABLE api_key_addresses;
DROP TABLE api_keys;
