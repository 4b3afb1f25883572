-- Up Migration

-- The delivery ledger becomes a send claim (SqlDeliveryLedger.claim): a worker writes a row before
-- it sends, so that two workers holding tasks of one id cannot both send. A row is either a claim
-- (no provider id yet: `claimed_by` sends until `claimed_until`, a lease it renews while the send
-- runs) or a send the provider accepted. A claim whose lease ended belongs to a dead worker, and
-- the next claim takes it over.
ALTER TABLE delivery_ledger
  ALTER COLUMN provider_id DROP NOT NULL,
  ALTER COLUMN sent_at DROP NOT NULL,
  ADD COLUMN claimed_by text,
  ADD COLUMN claimed_until timestamptz,
  ADD CONSTRAINT delivery_ledger_sent_or_claimed CHECK (
    (provider_id IS NULL) = (sent_at IS NULL)
    AND (provider_id IS NOT NULL OR (claimed_by IS NOT NULL AND claimed_until IS NOT NULL))
  );
-- The retention purge also forgets claims whose holders died long ago.
CREATE INDEX delivery_ledger_stale_claims ON delivery_ledger (claimed_until)
  WHERE provider_id IS NULL;

-- Down Migration

DROP INDEX delivery_ledger_stale_claims;
-- A claim has no place in the old table: it only said that a send may be under way.
DELETE FROM delivery_ledger WHERE provider_id IS NULL;
ALTER TABLE delivery_ledger
  DROP CONSTRAINT delivery_ledger_sent_or_claimed,
  DROP COLUMN claimed_until,
  DROP COLUMN claimed_by,
  ALTER COLUMN sent_at SET NOT NULL,
  ALTER COLUMN provider_id SET NOT NULL;
