-- Partner policies and the per-partner feed state distribution keeps to emit exact diffs.

CREATE TABLE IF NOT EXISTS partner_policies (
  partner_id          text PRIMARY KEY REFERENCES partners (partner_id),
  categories          text[] NOT NULL,              -- UK categories the partner receives
  min_grading_status  text NOT NULL CHECK (min_grading_status IN ('disputed', 'indicative', 'confirmed')),
  algorithms          text[] NOT NULL,
  scheme              text NOT NULL CHECK (scheme IN ('uk', 'ics', 'vics')),
  extra_fields        text[] NOT NULL DEFAULT '{}',
  delivery            text NOT NULL CHECK (delivery IN ('kafka', 's3', 'both')),
  feed_partitions     integer NOT NULL DEFAULT 3,
  version             integer NOT NULL DEFAULT 1,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- What each partner currently holds, one row per hash (alg, value): the owner record can change on merge.
CREATE TABLE IF NOT EXISTS feed_entries (
  partner_id     text NOT NULL,
  alg            text NOT NULL,
  value          text NOT NULL,
  record_id      uuid NOT NULL,
  revision       bigint NOT NULL,
  category       text NOT NULL,
  content_type   text NOT NULL,
  extra          jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (partner_id, alg, value)
);
CREATE INDEX IF NOT EXISTS feed_entries_record ON feed_entries (partner_id, record_id);

-- Head of each partner feed partition's hash chain.
CREATE TABLE IF NOT EXISTS feed_partitions (
  partner_id     text NOT NULL,
  partition      integer NOT NULL,
  last_seq       bigint NOT NULL,
  last_digest    bytea NOT NULL,
  PRIMARY KEY (partner_id, partition)
);

-- The latest canonical revision applied per record: older or repeated revisions change nothing.
CREATE TABLE IF NOT EXISTS distributed_records (
  record_id      uuid PRIMARY KEY,
  revision       bigint NOT NULL,
  body           bytea NOT NULL                   -- the canonical record, to re-evaluate on policy change
);

CREATE TABLE IF NOT EXISTS unmappable_counts (
  partner_id     text NOT NULL,
  category       text NOT NULL,
  count          bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (partner_id, category)
);

CREATE TABLE IF NOT EXISTS feed_outbox (
  id                 bigserial PRIMARY KEY,
  topic              text NOT NULL,
  message_key        text,
  message_value      bytea NOT NULL,
  message_partition  integer,
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- S3 exports per partner: snapshots and deltas, each with a signed manifest.
CREATE TABLE IF NOT EXISTS feed_exports (
  partner_id     text NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('snapshot', 'delta')),
  object_key     text NOT NULL,
  manifest_key   text NOT NULL,
  covers         jsonb NOT NULL,                  -- per partition: seq range covered
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partner_id, object_key)
);

-- Every feed record issued to a partner that takes S3 delivery, for deltas.
CREATE TABLE IF NOT EXISTS feed_log (
  partner_id     text NOT NULL,
  partition      integer NOT NULL,
  seq            bigint NOT NULL,
  body           bytea NOT NULL,
  PRIMARY KEY (partner_id, partition, seq)
);

-- Policy version each partner's feed was last reconciled with.
CREATE TABLE IF NOT EXISTS policy_applied (
  partner_id     text PRIMARY KEY,
  version        integer NOT NULL
);
