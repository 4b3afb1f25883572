-- Up Migration

-- The durable task queue (SqlEmailQueue): one row per task, from publish until it is done, retried
-- (the same row, due later) or moved to the dead letters. Workers take rows with
-- SELECT … FOR UPDATE SKIP LOCKED and hold them with a lease they renew while a handler runs.
CREATE TABLE email_tasks (
  -- Publish order: among tasks due at the same time, the oldest is taken first.
  seq bigserial PRIMARY KEY,
  -- The request's id (NULL only for a row a foreign writer left without one).
  email_id text,
  -- The task body exactly as task-message encodes it ({"v":1,"request":…}); bytes, not jsonb, so
  -- that a malformed body is kept as it came and dead-lettered by the worker, not refused here.
  body bytea NOT NULL,
  -- 1 for the first try; a Retry bumps it on the same row.
  attempt integer NOT NULL DEFAULT 1,
  -- The earlier attempts (AttemptRecord[]), oldest first, at most task-message's MAX_HISTORY.
  history jsonb NOT NULL DEFAULT '[]',
  -- Due time: now for a new task, later for a retry or a task whose handler failed.
  available_at timestamptz NOT NULL DEFAULT now(),
  -- The lease: NULL, or the worker holding the row and until when. An expired lease counts as
  -- none, so a task held by a crashed worker is taken again.
  locked_until timestamptz,
  locked_by text,
  -- Times taken since the task was last scheduled: the fencing token of every settle (a worker
  -- whose lease expired and was taken over cannot touch the row any more), and the back-off of a
  -- handler that keeps failing.
  deliveries integer NOT NULL DEFAULT 0,
  enqueued_at timestamptz NOT NULL DEFAULT now()
);
-- The take: due rows, earliest first.
CREATE INDEX email_tasks_due ON email_tasks (available_at, seq);

-- What could not be delivered, kept until replayed or purged (`email dead-letters …`).
CREATE TABLE email_dead_letters (
  seq bigserial PRIMARY KEY,
  email_id text,
  -- The task's original body, so that a replay decodes exactly what was sent.
  body bytea NOT NULL,
  reason text NOT NULL,
  -- The attempt that gave up.
  attempts integer NOT NULL,
  failed_at timestamptz NOT NULL,
  history jsonb NOT NULL DEFAULT '[]'
);

-- Down Migration

DROP TABLE email_dead_letters;
DROP TABLE email_tasks;
