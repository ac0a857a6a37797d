-- The canonical store: one row per image/video the hub knows, the hashes that identify it,
-- each agency's sighting of it, and the bookkeeping that makes processing exactly-once.

CREATE TABLE IF NOT EXISTS canonical_records (
  record_id        uuid PRIMARY KEY,
  record_no        bigserial UNIQUE,          -- compact integer id for the in-memory near-duplicate index
  revision         bigint NOT NULL,
  deleted          boolean NOT NULL,
  merged_into      uuid,
  content_type     text NOT NULL,
  near_duplicates  uuid[] NOT NULL DEFAULT '{}',
  first_seen_at    bigint NOT NULL,
  updated_at       bigint NOT NULL
);

-- Every hash of every record, all algorithms; (alg, value) identifies exactly one record.
CREATE TABLE IF NOT EXISTS record_hashes (
  alg              text NOT NULL,
  value            text NOT NULL,
  record_id        uuid NOT NULL REFERENCES canonical_records (record_id),
  quality          integer,
  hash_seq         bigserial UNIQUE,          -- lets each dedup instance catch its index up incrementally
  PRIMARY KEY (alg, value)
);
CREATE INDEX IF NOT EXISTS record_hashes_record ON record_hashes (record_id);

-- One current sighting per agency per record; RETRACT rows are kept (an authority retraction withdraws).
CREATE TABLE IF NOT EXISTS sightings (
  record_id        uuid NOT NULL REFERENCES canonical_records (record_id),
  agency_id        text NOT NULL,
  op               text NOT NULL CHECK (op IN ('ASSERT', 'RETRACT')),
  submission_id    text NOT NULL,
  key_id           text NOT NULL,
  uk               text NOT NULL,
  ics              text,
  submitter_status text NOT NULL,
  restricted       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- law-enforcement-only metadata of this sighting
  submitted_at     bigint NOT NULL,
  PRIMARY KEY (record_id, agency_id)
);

-- Submission ids already applied: redelivery and replays change nothing.
CREATE TABLE IF NOT EXISTS applied_submissions (
  submission_id    text PRIMARY KEY,
  agency_id        text NOT NULL,
  key_id           text NOT NULL,
  digest           bytea NOT NULL,
  record_id        uuid,
  applied_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS applied_submissions_key ON applied_submissions (key_id);

-- Transactional outbox: rows written with the state change, relayed to Kafka in id order, then deleted.
CREATE TABLE IF NOT EXISTS outbox (
  id               bigserial PRIMARY KEY,
  topic            text NOT NULL,
  message_key      text,
  message_value    bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
