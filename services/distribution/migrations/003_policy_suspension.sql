-- A suspended partner receives nothing: distribution stops issuing its feed records and S3 exports
-- until the policy is resumed. What it held stays in feed_entries, so resuming re-plans against it
-- and sends exactly what changed meanwhile. Suspending or resuming bumps the policy version.
ALTER TABLE partner_policies ADD COLUMN IF NOT EXISTS suspended_at timestamptz;
ALTER TABLE partner_policies ADD COLUMN IF NOT EXISTS suspended_reason text;
