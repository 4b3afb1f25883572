-- Up Migration

-- Every change to the suppression list is announced on the channel `email_suppressions`, so
-- that an `email server` can keep the list in memory (CachedSuppressionList) and screen each
-- request without a query. The payload is JSON: {"op":"add"|"remove","address":…,"seq":…} for
-- a row, {"op":"reload","seq":…} for a TRUNCATE, which fires no row trigger. NOTIFY is delivered
-- when the transaction commits, in commit order, and not at all if it rolls back. `seq` makes
-- every payload unique: PostgreSQL drops a notification equal to one the same transaction sent
-- already, so adding, removing and adding one address again would announce only the first two.
CREATE SEQUENCE suppression_changes;

CREATE FUNCTION announce_suppression_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('email_suppressions',
      json_build_object('op', 'reload', 'seq', nextval('suppression_changes'))::text);
    RETURN NULL;
  END IF;
  -- An update that keeps the address changes nothing a copy holds: announced as a remove and
  -- an add, a look-up between the two would miss an address that never left.
  IF TG_OP = 'UPDATE' AND OLD.address = NEW.address THEN
    RETURN NULL;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    PERFORM pg_notify('email_suppressions', json_build_object(
      'op', 'remove', 'address', OLD.address, 'seq', nextval('suppression_changes'))::text);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('email_suppressions', json_build_object(
      'op', 'add', 'address', NEW.address, 'seq', nextval('suppression_changes'))::text);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER suppressions_announce_rows
  AFTER INSERT OR UPDATE OR DELETE ON suppressions
  FOR EACH ROW EXECUTE FUNCTION announce_suppression_change();

CREATE TRIGGER suppressions_announce_truncate
  AFTER TRUNCATE ON suppressions
  FOR EACH STATEMENT EXECUTE FUNCTION announce_suppression_change();

-- Down Migration

DROP TRIGGER suppressions_announce_truncate ON suppressions;
DROP TRIGGER suppressions_announce_rows ON suppressions;
DROP FUNCTION announce_suppression_change();
DROP SEQUENCE suppression_changes;
