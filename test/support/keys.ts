/** Fresh synthetic signing keys registered in a hub database, as `bin/hashrelay keys register` does. */
import { writeFileSync } from "node:fs";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import type { KeyOwnerKind } from "../../services/shared/key-registry.ts";
import type { Queryable } from "../../services/shared/postgres.ts";
import { deriveKeyId, generateSigningKeyPair } from "../../services/shared/wire/signing.ts";
import type { GeneratedKeyPair } from "../../services/shared/wire/signing.ts";

export interface FreshKey extends GeneratedKeyPair {
  readonly keyId: string;
}

export interface FreshKeyOptions {
  /** Default: a minute ago, so that a record signed at once is inside the window. */
  readonly validFrom?: Date;
  readonly validUntil?: Date | null;
  /** Where to write the private key (mode 0600), as the owner keeps it. */
  readonly file?: string;
}

/** A new Ed25519 key pair for the owner, its public half registered (the owner must be registered). */
export async function registerFreshKey(
  db: Queryable,
  ownerKind: KeyOwnerKind,
  ownerId: string,
  options: FreshKeyOptions = {},
): Promise<FreshKey> {
  const pair = generateSigningKeyPair();
  const keyId = deriveKeyId(ownerId, pair.publicKey);
  await new PgKeyRegistry(db, 0).registerKey({
    keyId,
    ownerKind,
    ownerId,
    publicKey: pair.publicKey,
    validFrom: options.validFrom ?? new Date(Date.now() - 60_000),
    validUntil: options.validUntil ?? null,
  });
  if (options.file) writeFileSync(options.file, pair.privateKeyPem, { mode: 0o600 });
  return { keyId, ...pair };
}
