/**
 * The key registry: which Ed25519 public keys belong to which agency, partner (for its feedback) or
 * the hub, and when
 * each may be used. Trust rule (DESIGN guarantee 6): a signature counts only if its key is
 * registered to the claimed owner, not revoked, and inside its validity window.
 */
import type avro from "avsc";
import { SignatureError } from "./errors.ts";
import type { Queryable } from "./postgres.ts";
import { publicKeyFromRaw, signatureMatches } from "./wire/signing.ts";
import type { SignedRecordName, SignedRecordOf } from "./wire/signing.ts";

export type KeyOwnerKind = "agency" | "hub" | "partner";

export interface RegisteredKey {
  readonly keyId: string;
  readonly ownerKind: KeyOwnerKind;
  readonly ownerId: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  readonly validFrom: Date;
  readonly validUntil: Date | null;
  readonly revokedAt: Date | null;
}

export interface KeyLookup {
  findKey(keyId: string): Promise<RegisteredKey | undefined>;
}

export interface ExpectedSigner {
  readonly ownerKind: KeyOwnerKind;
  readonly ownerId: string;
  /** Now: revocation is judged at this time, and so is the validity window without `signedAt`. */
  readonly at: Date;
  /**
   * When the signer says it signed (a submission's submittedAt). The validity window is judged at
   * this time, so a key rotated out still verifies what it signed inside its window; revocation is
   * not, as a stolen key could backdate. Callers bound how far back this may be (STALE_SUBMISSION).
   */
  readonly signedAt?: Date;
}

/** Throws a SignatureError with the precise reason when the key may not be used. */
export function assertKeyUsable(keyId: string, key: RegisteredKey | undefined, expected: ExpectedSigner): RegisteredKey {
  if (!key) throw new SignatureError("UNKNOWN_KEY", `key ${keyId} is not registered`);
  if (key.ownerKind !== expected.ownerKind || key.ownerId !== expected.ownerId) {
    throw new SignatureError(
      "KEY_OWNER_MISMATCH",
      `key ${keyId} belongs to ${key.ownerKind} ${key.ownerId}, not ${expected.ownerKind} ${expected.ownerId}`,
    );
  }
  const at = expected.at.getTime();
  if (key.revokedAt && key.revokedAt.getTime() <= at) {
    throw new SignatureError("KEY_REVOKED", `key ${keyId} was revoked at ${key.revokedAt.toISOString()}`);
  }
  // A claimed signing time in the future gets no benefit: the window is then judged now.
  const signed = Math.min(expected.signedAt?.getTime() ?? at, at);
  if (key.validFrom.getTime() > signed) {
    throw new SignatureError("KEY_NOT_YET_VALID", `key ${keyId} is valid from ${key.validFrom.toISOString()}`);
  }
  if (key.validUntil && key.validUntil.getTime() <= signed) {
    throw new SignatureError("KEY_EXPIRED", `key ${keyId} expired at ${key.validUntil.toISOString()}`);
  }
  return key;
}

/**
 * Verifies a decoded signed record: key usable for the expected owner, and signature over the
 * writer schema's canonical bytes. Resolves on success, throws SignatureError otherwise.
 */
export async function verifySignedRecord<N extends SignedRecordName>(
  name: N,
  writerType: avro.Type,
  record: SignedRecordOf<N>,
  keys: KeyLookup,
  expected: ExpectedSigner,
): Promise<RegisteredKey> {
  const key = assertKeyUsable(record.keyId, await keys.findKey(record.keyId), expected);
  if (!signatureMatches(name, writerType, record, publicKeyFromRaw(key.publicKey))) {
    throw new SignatureError("BAD_SIGNATURE", `${name} signature does not verify with key ${record.keyId}`);
  }
  return key;
}

interface KeyRow {
  key_id: string;
  owner_kind: KeyOwnerKind;
  owner_id: string;
  public_key: Buffer;
  valid_from: Date;
  valid_until: Date | null;
  revoked_at: Date | null;
}

function toKey(row: KeyRow): RegisteredKey {
  return {
    keyId: row.key_id,
    ownerKind: row.owner_kind,
    ownerId: row.owner_id,
    publicKey: row.public_key,
    validFrom: row.valid_from,
    validUntil: row.valid_until,
    revokedAt: row.revoked_at,
  };
}

/**
 * Key registry backed by the hub's PostgreSQL (tables from shared/migrations/001_key_registry.sql).
 * Lookups are cached for `cacheMs`, and concurrent lookups of one key share a single query (a batch
 * verified in parallel asks for the same key once per message): the answer any caller gets was read
 * at most `cacheMs` before it was given, as without the sharing.
 */
export class PgKeyRegistry implements KeyLookup {
  private readonly cache = new Map<string, { key: RegisteredKey | undefined; until: number }>();
  /** Lookups in flight, by key id: callers that miss the cache meanwhile wait for this one. */
  private readonly pending = new Map<string, Promise<RegisteredKey | undefined>>();

  /** `cacheMs` bounds how long a revocation can take to bite in a running service. */
  private readonly db: Queryable;
  private readonly cacheMs: number;

  constructor(db: Queryable, cacheMs: number = 2_000) {
    this.db = db;
    this.cacheMs = cacheMs;
  }

  async findKey(keyId: string): Promise<RegisteredKey | undefined> {
    const now = Date.now();
    const hit = this.cache.get(keyId);
    if (hit && hit.until > now) return hit.key;
    const inFlight = this.pending.get(keyId);
    if (inFlight) return inFlight;
    const lookup: Promise<RegisteredKey | undefined> = this.lookUp(keyId, now).finally(() => {
      if (this.pending.get(keyId) === lookup) this.pending.delete(keyId);
    });
    this.pending.set(keyId, lookup);
    return lookup;
  }

  private async lookUp(keyId: string, now: number): Promise<RegisteredKey | undefined> {
    const { rows } = await this.db.query<KeyRow>("SELECT * FROM signing_keys WHERE key_id = $1", [keyId]);
    const key = rows[0] ? toKey(rows[0]) : undefined;
    if (this.cacheMs > 0) this.cache.set(keyId, { key, until: now + this.cacheMs });
    return key;
  }

  async registerKey(key: Omit<RegisteredKey, "revokedAt">): Promise<void> {
    if (key.ownerKind === "agency") {
      const { rowCount } = await this.db.query("SELECT 1 FROM agencies WHERE agency_id = $1", [key.ownerId]);
      if (!rowCount) throw new SignatureError("UNKNOWN_KEY", `agency ${key.ownerId} is not registered; register it first`);
    }
    if (key.ownerKind === "partner") {
      const { rowCount } = await this.db.query("SELECT 1 FROM partners WHERE partner_id = $1", [key.ownerId]);
      if (!rowCount) throw new SignatureError("UNKNOWN_KEY", `partner ${key.ownerId} is not registered; register it first`);
    }
    await this.db.query(
      `INSERT INTO signing_keys (key_id, owner_kind, owner_id, public_key, valid_from, valid_until)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [key.keyId, key.ownerKind, key.ownerId, key.publicKey, key.validFrom, key.validUntil],
    );
    this.cache.delete(key.keyId);
    this.pending.delete(key.keyId);
  }

  async revokeKey(keyId: string, reason: string, at: Date = new Date()): Promise<void> {
    const { rowCount } = await this.db.query(
      "UPDATE signing_keys SET revoked_at = $2, revoked_reason = $3 WHERE key_id = $1 AND revoked_at IS NULL",
      [keyId, at, reason],
    );
    if (!rowCount) throw new SignatureError("UNKNOWN_KEY", `key ${keyId} is not registered or already revoked`);
    this.cache.delete(keyId);
    this.pending.delete(keyId);
  }

  async listKeys(ownerKind?: KeyOwnerKind, ownerId?: string): Promise<RegisteredKey[]> {
    const { rows } = await this.db.query<KeyRow>(
      `SELECT * FROM signing_keys
        WHERE ($1::text IS NULL OR owner_kind = $1) AND ($2::text IS NULL OR owner_id = $2)
        ORDER BY owner_kind, owner_id, valid_from`,
      [ownerKind ?? null, ownerId ?? null],
    );
    return rows.map(toKey);
  }
}

/** In-memory key lookup for unit tests of pure code. */
export class StaticKeyLookup implements KeyLookup {
  private readonly keys: Map<string, RegisteredKey>;
  constructor(keys: RegisteredKey[]) {
    this.keys = new Map(keys.map((k) => [k.keyId, k]));
  }
  async findKey(keyId: string): Promise<RegisteredKey | undefined> {
    return this.keys.get(keyId);
  }
}
