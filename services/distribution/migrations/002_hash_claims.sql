-- Which live canonical records claim each hash: one row per hash listed by a record's latest
-- revision, for records neither withdrawn nor merged away (planner.ts). Dedup leaves an exact hash
-- in one live record, but revisions of different records arrive in any order, so while they are in
-- flight a hash can have two claimants; the freshest revision governs what partners hold.
CREATE TABLE IF NOT EXISTS distributed_hashes (
  alg            text NOT NULL,
  value          text NOT NULL,
  record_id      uuid NOT NULL,
  PRIMARY KEY (alg, value, record_id)
);
CREATE INDEX IF NOT EXISTS distributed_hashes_record ON distributed_hashes (record_id);

-- One-off work distribution does in code at start (it needs the Avro bodies): claims of the
-- records distributed before this migration, then a reconciliation of every partner's feed.
CREATE TABLE IF NOT EXISTS distribution_backfills (
  name           text PRIMARY KEY
);
INSERT INTO distribution_backfills (name) SELECT 'hash_claims' WHERE EXISTS (SELECT 1 FROM distributed_records) ON CONFLICT DO NOTHING;
