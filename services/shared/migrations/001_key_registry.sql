-- Who may sign what: agencies, partners and the hub, with their Ed25519 public keys.
CREATE TABLE IF NOT EXISTS agencies (
  agency_id            text PRIMARY KEY CHECK (agency_id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  name                 text NOT NULL,
  kind                 text NOT NULL CHECK (kind IN ('force', 'nca', 'other')),
  grading_authority    boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS partners (
  partner_id           text PRIMARY KEY CHECK (partner_id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  name                 text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS signing_keys (
  key_id               text PRIMARY KEY,
  owner_kind           text NOT NULL CHECK (owner_kind IN ('agency', 'hub')),
  owner_id             text NOT NULL,
  public_key           bytea NOT NULL CHECK (length(public_key) = 32),
  valid_from           timestamptz NOT NULL,
  valid_until          timestamptz,
  revoked_at           timestamptz,
  revoked_reason       text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX IF NOT EXISTS signing_keys_owner ON signing_keys (owner_kind, owner_id);
