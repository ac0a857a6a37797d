-- Perceptual values never identify a record: several records may carry one value, so record_hashes
-- is keyed by (alg, value, record_id) and only exact (cryptographic) rows keep one owner per value
-- (record_hashes_exact). The service sets `exact` from the hash algorithm table on every insert.
-- Rows written before this migration are exact: no hub held perceptual rows when it was added.
ALTER TABLE record_hashes ADD COLUMN IF NOT EXISTS exact boolean NOT NULL DEFAULT true;
ALTER TABLE record_hashes ALTER COLUMN exact DROP DEFAULT;
ALTER TABLE record_hashes DROP CONSTRAINT IF EXISTS record_hashes_pkey;
ALTER TABLE record_hashes ADD PRIMARY KEY (alg, value, record_id);
CREATE UNIQUE INDEX IF NOT EXISTS record_hashes_exact ON record_hashes (alg, value) WHERE exact;

-- Perceptual values kept out of near-duplicate matching and out of every partner feed, with the
-- first reason found (a value never stops being degenerate). `records` counts the distinct canonical
-- records carrying it, refreshed whenever a batch touches it; degenerate_seq lets every dedup
-- instance drop newly degenerate values from its in-memory index.
CREATE TABLE IF NOT EXISTS degenerate_hashes (
  alg              text NOT NULL,
  value            text NOT NULL,
  reason           text NOT NULL CHECK (reason IN ('LOW_QUALITY', 'CONSTANT', 'SHARED')),
  records          integer NOT NULL,
  first_seen_at    bigint NOT NULL,
  degenerate_seq   bigserial UNIQUE,
  PRIMARY KEY (alg, value)
);
