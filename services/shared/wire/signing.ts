/**
 * Ed25519 signatures over canonical bytes: the Avro encoding (writer schema) of every field of a
 * signed record except the trailing `signature`, prefixed by a domain tag naming the record type
 * so a signature over one kind of record can never be presented as another. The body includes
 * keyId and op (and revision on feed records), so none of them can be altered or swapped.
 *
 * Frozen contract: stored signatures and every partner's and force's verifier depend on these
 * bytes and domain tags ("hashrelay/sig/v1/..."). Changing them invalidates every signature ever
 * made. To change what is signed, add a new domain tag (".../v2/...") and verify both.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import avro from "avsc";
import { SignatureError } from "../errors.ts";
import type { FeedRecord, Submission } from "./records.ts";

export type SignedRecordName = "Submission" | "FeedRecord";
export type SignedRecordOf<N extends SignedRecordName> = N extends "Submission" ? Submission : FeedRecord;
export type Unsigned<T> = Omit<T, "signature">;

const bodyTypes = new WeakMap<avro.Type, avro.Type>();

/** The writer schema without its trailing signature field. */
function bodyTypeOf(type: avro.Type): avro.Type {
  let body = bodyTypes.get(type);
  if (!body) {
    const schema = type.schema() as { fields: { name: string }[] } & Record<string, unknown>;
    const last = schema.fields[schema.fields.length - 1];
    if (last?.name !== "signature") {
      throw new Error(`${String(schema["name"])} cannot be signed: its last field must be "signature"`);
    }
    body = avro.Type.forSchema({ ...schema, fields: schema.fields.slice(0, -1) } as avro.Schema);
    bodyTypes.set(type, body);
  }
  return body;
}

/** The exact bytes a signature covers, for a record written with `writerType`. */
export function signingBytes(name: SignedRecordName, writerType: avro.Type, record: object): Buffer {
  const body = bodyTypeOf(writerType).toBuffer(record);
  return Buffer.concat([Buffer.from(`hashrelay/sig/v1/${name}\n`, "utf8"), body]);
}

export function signRecord<N extends SignedRecordName>(
  name: N,
  writerType: avro.Type,
  unsigned: Unsigned<SignedRecordOf<N>>,
  privateKey: KeyObject,
): SignedRecordOf<N> {
  const signature = edSign(null, signingBytes(name, writerType, unsigned), privateKey);
  return { ...unsigned, signature } as SignedRecordOf<N>;
}

/** True when the signature matches; says nothing about whether the key may be used (see keys.ts). */
export function signatureMatches(
  name: SignedRecordName,
  writerType: avro.Type,
  record: SignedRecordOf<SignedRecordName>,
  publicKey: KeyObject,
): boolean {
  if (!Buffer.isBuffer(record.signature) || record.signature.length !== 64) return false;
  try {
    return edVerify(null, signingBytes(name, writerType, record), publicKey, record.signature);
  } catch {
    return false;
  }
}

// ---- key material -------------------------------------------------------------------------

export interface GeneratedKeyPair {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** PKCS#8 PEM; write it to a file with mode 0600, never log it. */
  readonly privateKeyPem: string;
}

export function generateSigningKeyPair(): GeneratedKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicKey: rawPublicKey(publicKey),
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  if (jwk.crv !== "Ed25519" || typeof jwk.x !== "string") throw new Error("not an Ed25519 key");
  return Buffer.from(jwk.x, "base64url");
}

const publicKeyCache = new Map<string, KeyObject>();

/** Key objects are cached: building one costs more than an Ed25519 verify. */
export function publicKeyFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new SignatureError("UNKNOWN_KEY", `Ed25519 public key must be 32 bytes, got ${raw.length}`);
  const x = raw.toString("base64url");
  let key = publicKeyCache.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
    if (publicKeyCache.size > 10_000) publicKeyCache.clear();
    publicKeyCache.set(x, key);
  }
  return key;
}

export function privateKeyFromPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("signing key is not Ed25519");
  return key;
}

/** Key ids name their owner and a digest of the public key, so they are unique and self-describing. */
export function deriveKeyId(ownerId: string, publicKey: Buffer): string {
  return `${ownerId}:${createHash("sha256").update(publicKey).digest("hex").slice(0, 16)}`;
}
