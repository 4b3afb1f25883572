-- Up Migration

-- Where outgoing webhooks go (SqlWebhookEndpoints), shared by every server and worker.
CREATE TABLE webhook_endpoints (
  -- `we_` and 16 base64url characters. "C" collation: ties in `list` order by the id's bytes, as
  -- the in-memory store compares them.
  id text COLLATE "C" PRIMARY KEY,
  url text NOT NULL,
  -- The event types the endpoint takes (`email.sent`, …); empty for every type, so that a type
  -- added later reaches the endpoints that asked for everything.
  events text[] NOT NULL DEFAULT '{}',
  -- `whsec_…`, kept as it is (not a digest): every delivery is signed with it.
  secret text NOT NULL,
  created_at timestamptz NOT NULL
);
-- No index besides the key: a handful of rows, read whole (`list`, `subscribedTo`).

-- Every delivery of a change to an endpoint, with its attempts (SqlWebhookDeliveries).
CREATE TABLE webhook_deliveries (
  -- The `webhook-id` header, the same on every attempt. "C" collation: ties in time order by the
  -- id's bytes, as the in-memory store compares them.
  id text COLLATE "C" PRIMARY KEY,
  -- No foreign key: a delivery outlives its endpoint, which is why it keeps the URL it went to.
  endpoint_id text NOT NULL,
  url text NOT NULL,
  email_id text NOT NULL,
  type text NOT NULL,
  -- The change the delivery is about (type, time, recipient): see the unique key below.
  notice_key text NOT NULL,
  -- The exact JSON body as sent and signed: text, not jsonb, which would reorder its keys.
  payload text NOT NULL,
  created_at timestamptz NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  -- Every attempt so far, oldest first: a handful at most (eight in the retry schedule), always
  -- read with the delivery, and appended to in the same UPDATE that checks their number.
  attempts jsonb NOT NULL DEFAULT '[]',
  -- When the next attempt is due, while pending.
  next_attempt_at timestamptz,
  -- One delivery per endpoint and change of an email: the same event heard twice (a redelivered
  -- message, two workers) finds the delivery made the first time instead of making another.
  CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, email_id, notice_key)
);
-- `forEmail`: one email's deliveries, oldest first.
CREATE INDEX webhook_deliveries_email ON webhook_deliveries (email_id, created_at, id);
-- `recent`: newest first.
CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (created_at DESC, id DESC);
-- `oldestPending`: the few still pending, without reading the many that are done.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (created_at) WHERE state = 'pending';
-- `purgeOlderThan`: the finished ones, oldest first, without stepping over the pending ones.
CREATE INDEX webhook_deliveries_final ON webhook_deliveries (created_at, id)
  WHERE state <> 'pending';

-- The embedded job queue of `email dev` (where there is no RabbitMQ): the next attempt of each
-- pending delivery, due at `due_at`, taken by a worker until `lease_until` (NULL: not taken), so
-- that a worker that died leaves its job to be taken again. One row per delivery: a delivery has
-- one next attempt at a time.
CREATE TABLE webhook_jobs (
  delivery_id text PRIMARY KEY,
  attempt integer NOT NULL,
  due_at timestamptz NOT NULL,
  lease_until timestamptz
);
-- Taking the jobs that are due, soonest first.
CREATE INDEX webhook_jobs_due_at ON webhook_jobs (due_at);

-- Down Migration

DROP TABLE webhook_jobs;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
