-- Progress of an S3 import while it runs, so a force's client can show how far the hub has read:
-- lines and bytes read so far, the object's size from S3 and when the current run started.
-- A re-queued import starts again from zero, like its counts.
ALTER TABLE ingest_imports
  ADD COLUMN IF NOT EXISTS lines_read  bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS bytes_read  bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS total_bytes bigint,
  ADD COLUMN IF NOT EXISTS started_at  timestamptz;
