-- What halted a partition: the refused record's seq, Kafka offset and prevDigest, so that
-- `hashrelay-sink resume` can continue exactly at that (hub-signed) record. NULL when not halted.
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS halted_seq bigint;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS halted_offset bigint;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS halted_prev_digest bytea;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS halted_at timestamptz;
