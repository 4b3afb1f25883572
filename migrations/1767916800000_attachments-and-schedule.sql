-- Up Migration

-- The bytes of attachments (SqlAttachmentStore), stored once whatever the number of emails that
-- carry them: a task on the queue names a digest, not megabytes.
CREATE TABLE attachments (
  -- SHA-256 of the content, lowercase hex.
  digest text PRIMARY KEY,
  content bytea NOT NULL,
  -- Octets, so that a size is known without reading the content.
  size integer NOT NULL,
  -- The first `put` of these bytes; an orphan older than the retention cutoff is purged.
  created_at timestamptz NOT NULL
);
-- The orphan purge: oldest first.
CREATE INDEX attachments_created_at ON attachments (created_at);

-- Which email carries which attachment. No foreign key to `emails`: the API stores the files
-- before it records the email, in other statements and often in another process, so a link to an
-- email not yet in `emails` is normal, and a deferred constraint (checked at the end of one
-- transaction) would not cover that. Instead purgeOrphans deletes the links of emails that are not
-- there, and only links made before the retention cutoff (`linked_at`): long enough for the email
-- to have been recorded, whereas a link made a moment ago may be waiting for its email.
-- The foreign key to `attachments` (no cascade) means a link never names missing bytes: a purge
-- and a `put` of the same bytes racing make one of them fail and retry, never lose the file.
CREATE TABLE email_attachments (
  email_id text NOT NULL,
  digest text NOT NULL REFERENCES attachments (digest),
  linked_at timestamptz NOT NULL,
  PRIMARY KEY (email_id, digest)
);
-- "Does any email still carry these bytes?" (the purge, and the foreign key's check on delete).
CREATE INDEX email_attachments_digest ON email_attachments (digest);
-- The links old enough to be checked against `emails`.
CREATE INDEX email_attachments_linked_at ON email_attachments (linked_at);

-- Emails held until their send_at (SqlScheduledEmails), shared by every worker. A worker leases
-- the due ones (`leased_until`), publishes them and deletes their rows; a lease that ran out
-- belongs to a worker that died, and the next take counts it as none.
CREATE TABLE scheduled_emails (
  -- "C" collation: ties of due time are taken in the ids' byte order, as the in-memory store does.
  email_id text COLLATE "C" PRIMARY KEY,
  due_at timestamptz NOT NULL,
  leased_until timestamptz
);
-- The take (due rows, earliest first, ties in id order) and the next due time.
CREATE INDEX scheduled_emails_due ON scheduled_emails (due_at, email_id);

-- Down Migration

DROP TABLE scheduled_emails;
DROP TABLE email_attachments;
DROP TABLE attachments;
