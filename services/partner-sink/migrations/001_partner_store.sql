-- The partner's own database: the hashes it is entitled to, and how far its feed has been applied.
CREATE TABLE IF NOT EXISTS partner_hashes (
  alg            text NOT NULL,
  value          text NOT NULL,
  category       text,
  content_type   text,
  record_ref     text NOT NULL,
  revision       bigint NOT NULL,
  extra          jsonb NOT NULL DEFAULT '{}'::jsonb,
  removed        boolean NOT NULL DEFAULT false,     -- REMOVE keeps the row as a tombstone
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (alg, value)
);

CREATE TABLE IF NOT EXISTS feed_state (
  partition      integer PRIMARY KEY,
  last_seq       bigint NOT NULL,
  last_digest    bytea NOT NULL,
  halted_reason  text                                 -- set when a gap or broken chain stops the partition
);

-- Digest of every applied record: tells an identical re-delivery from a reordered or forged one.
CREATE TABLE IF NOT EXISTS feed_applied (
  partition      integer NOT NULL,
  seq            bigint NOT NULL,
  digest         bytea NOT NULL,
  PRIMARY KEY (partition, seq)
);

CREATE TABLE IF NOT EXISTS sink_alerts (
  id             bigserial PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  partition      integer,
  seq            bigint,
  kafka_offset   bigint,
  reason         text NOT NULL,
  detail         text NOT NULL
);

CREATE TABLE IF NOT EXISTS consumer_offsets (
  consumer_group   text NOT NULL,
  topic            text NOT NULL,
  partition        integer NOT NULL,
  next_offset      bigint NOT NULL,
  PRIMARY KEY (consumer_group, topic, partition)
);
