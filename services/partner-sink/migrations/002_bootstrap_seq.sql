-- Seq up to which a partition was loaded from a snapshot: older feed records are already held.
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS bootstrap_seq bigint NOT NULL DEFAULT 0;
