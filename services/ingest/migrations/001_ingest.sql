-- Submission ids already accepted, for idempotent retries and DUPLICATE_SUBMISSION detection.
CREATE TABLE IF NOT EXISTS ingest_submissions (
  submission_id  text PRIMARY KEY,
  agency_id      text NOT NULL,
  digest         bytea NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now()
);

-- S3 bulk imports and their receipts.
CREATE TABLE IF NOT EXISTS ingest_imports (
  import_id      text PRIMARY KEY,
  agency_id      text NOT NULL,
  bucket         text NOT NULL,
  object_key     text NOT NULL,
  status         text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
  accepted       integer NOT NULL DEFAULT 0,
  duplicates     integer NOT NULL DEFAULT 0,
  rejected       integer NOT NULL DEFAULT 0,
  by_reason      jsonb NOT NULL DEFAULT '{}'::jsonb,
  receipt_key    text,
  error          text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
