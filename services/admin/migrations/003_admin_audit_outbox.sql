-- The admin CLI's audit events, written in the same transaction as the hub change they record and
-- deleted once audit.v1 has acknowledged them: a change is never left without its event, even
-- when Kafka is down at the time (the next admin command, or `hashrelay audit flush`, sends it).
CREATE TABLE IF NOT EXISTS admin_audit_outbox (
  id             bigserial PRIMARY KEY,
  topic          text NOT NULL,
  message_key    text NOT NULL,
  message_value  bytea NOT NULL,
  action         text NOT NULL,      -- for operators reading the table: what is waiting
  created_at     timestamptz NOT NULL DEFAULT now()
);
