-- Up Migration

-- The confirmation watchdog (SqlEmailLog.unconfirmed) looks every minute for emails a provider
-- accepted and has said nothing about since: status `sent`, no provider line and no
-- `unconfirmed` line in their history. Only those rows are in this index, and a report or the
-- watchdog's note takes a row out again, so it stays small however many emails are kept: SMTP and
-- outbox sends, which never get a report, are in it under their own `sentBy` and never scanned.
-- `sentAt` is an ISO 8601 UTC string (Date.toISOString), which orders as text in the "C"
-- collation exactly as in time.
CREATE INDEX emails_awaiting_report
  ON emails ((state ->> 'sentBy'), ((state ->> 'sentAt') COLLATE "C"), id)
  WHERE status = 'sent'
    AND NOT (state -> 'history' @> '[{"source": "provider"}]'::jsonb)
    AND NOT (state -> 'history' @> '[{"status": "unconfirmed"}]'::jsonb);

-- Down Migration

DROP INDEX emails_awaiting_report;
