-- Partners sign their feedback (PartnerFeedback) with keys registered here, as agencies sign submissions.
ALTER TABLE signing_keys DROP CONSTRAINT IF EXISTS signing_keys_owner_kind_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_owner_kind_check CHECK (owner_kind IN ('agency', 'hub', 'partner'));
