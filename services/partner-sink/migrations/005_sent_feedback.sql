-- Feedback this partner signed and sent to the hub, kept as the exact bytes produced: a send that
-- failed is re-sent byte for byte, and a feedbackId is never signed twice with different content.
CREATE TABLE IF NOT EXISTS sent_feedback (
  feedback_id    uuid PRIMARY KEY,
  record_ref     text NOT NULL,
  kind           text NOT NULL,
  body           bytea NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  sent_at        timestamptz
);
CREATE INDEX IF NOT EXISTS sent_feedback_record ON sent_feedback (record_ref);
