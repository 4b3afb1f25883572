-- Up Migration

-- The one-time tokens of signed webhooks seen lately (SqlWebhookTokens), shared by every server
-- so that a captured request is refused as a replay by all of them. A token is only worth
-- keeping while its request's timestamp could still be accepted: older rows are deleted as new
-- ones come in.
CREATE TABLE webhook_tokens (
  token text PRIMARY KEY,
  seen_at timestamptz NOT NULL
);
-- Forgetting the old ones: oldest first.
CREATE INDEX webhook_tokens_seen_at ON webhook_tokens (seen_at);

-- Down Migration

DROP TABLE webhook_tokens;
