-- Signatures of accepted API requests, kept while their timestamp is inside the clock-skew window:
-- a captured request sent again is refused REQUEST_REPLAYED.
CREATE TABLE IF NOT EXISTS ingest_request_signatures (
  signature_digest bytea PRIMARY KEY,
  forget_after     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ingest_request_signatures_forget ON ingest_request_signatures (forget_after);
