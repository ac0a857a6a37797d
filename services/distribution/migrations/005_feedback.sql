-- Partner feedback (PartnerFeedback on feedback.<partner>.v1) and the review loop it opens.

-- Whether a partner stops receiving a record while a false-positive report about it is under review.
ALTER TABLE partner_policies ADD COLUMN IF NOT EXISTS withhold_under_review boolean NOT NULL DEFAULT false;

-- Every recordRef issued to a partner: feedback names a record only by the ref that partner received,
-- and a ref some other partner received is refused as that partner's, never resolved.
CREATE TABLE IF NOT EXISTS disclosed_refs (
  partner_id     text NOT NULL,
  record_ref     text NOT NULL,
  record_id      uuid NOT NULL,
  PRIMARY KEY (partner_id, record_ref)
);
CREATE INDEX IF NOT EXISTS disclosed_refs_ref ON disclosed_refs (record_ref);
-- The refs of what partners hold already are filled in by distribution at start (the ref is an HMAC
-- under its pseudonym secret); refs of records removed before this migration are not known.
INSERT INTO distribution_backfills (name) SELECT 'disclosed_refs' WHERE EXISTS (SELECT 1 FROM feed_entries) ON CONFLICT DO NOTHING;

-- Feedback accepted from partners, with the exact signed bytes. Operators only: never sent to partners.
CREATE TABLE IF NOT EXISTS partner_feedback (
  feedback_id    uuid PRIMARY KEY,                 -- the partner's idempotency key: a second one is FEEDBACK_REPLAYED
  partner_id     text NOT NULL,
  record_id      uuid NOT NULL,
  record_ref     text NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('MATCHED', 'FALSE_POSITIVE', 'NOT_CSAM_IN_OUR_JURISDICTION')),
  match_count    bigint,
  time_bucket    text,
  reason_code    text,
  free_text      text,
  key_id         text NOT NULL,
  sent_at        timestamptz NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now(),
  body           bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS partner_feedback_record ON partner_feedback (record_id);

-- A record under review after a FALSE_POSITIVE: open until an operator records the grading
-- authority's decision (upheld: the record stands; accepted: its correcting revision stands).
-- Distribution re-plans the record when a review opens and when a decision is applied_at.
CREATE TABLE IF NOT EXISTS record_reviews (
  record_id        uuid PRIMARY KEY,
  state            text NOT NULL CHECK (state IN ('open', 'upheld', 'accepted')),
  opened_at        timestamptz NOT NULL DEFAULT now(),
  opened_by        uuid NOT NULL,                  -- the feedback that opened it
  opened_revision  bigint NOT NULL,                -- the revision distribution held then
  reports          integer NOT NULL DEFAULT 1,     -- FALSE_POSITIVE reports received while open
  decided_at       timestamptz,
  decided_by       text,
  decision_note    text,
  applied_at       timestamptz                     -- when distribution re-planned the decided record
);
CREATE INDEX IF NOT EXISTS record_reviews_unapplied ON record_reviews (record_id) WHERE state <> 'open' AND applied_at IS NULL;
