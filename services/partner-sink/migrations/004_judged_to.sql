-- Kafka offset below which a partition's records have been read. An unsigned tail of the
-- chain-signed feed form is read again until its signed record arrives; a refusal among the
-- records read with it is alerted once, not at every reading.
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS judged_to bigint NOT NULL DEFAULT 0;
