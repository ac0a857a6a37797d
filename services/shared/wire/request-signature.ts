/**
 * The signature scheme of requests to the hub's ingest API, shared by the force CLI (which signs)
 * and the ingest service (which verifies). Each request carries the agency id, one of the agency's
 * registered key ids, a millisecond timestamp and an Ed25519 signature over
 * "hashrelay-request-v1", method, path, timestamp and the SHA-256 of the body.
 *
 * Frozen contract: forces sign these exact bytes, in this code and in their own clients. Changing
 * the string to sign, its domain tag or the header names locks every force out. To change the
 * scheme, add a new domain tag ("hashrelay-request-v2") beside this one and accept both until
 * every force has moved.
 */
import { createHash, sign as edSign, verify as edVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { publicKeyFromRaw } from "./signing.ts";

export const AUTH_HEADERS = {
  agency: "x-hashrelay-agency",
  keyId: "x-hashrelay-key-id",
  timestamp: "x-hashrelay-timestamp",
  signature: "x-hashrelay-signature",
} as const;

export interface RequestToSign {
  readonly method: string;
  /** Path with query string, as sent. */
  readonly path: string;
  readonly body: Buffer;
}

/** The exact bytes a request signature covers. */
export function requestSigningBytes(req: RequestToSign, timestamp: string): Buffer {
  const bodyDigest = createHash("sha256").update(req.body).digest("hex");
  return Buffer.from(`hashrelay-request-v1\n${req.method.toUpperCase()}\n${req.path}\n${timestamp}\n${bodyDigest}`);
}

/** Headers a force client adds to a request (used by the force CLI and tests). */
export function signRequest(
  req: RequestToSign,
  signer: { agencyId: string; keyId: string; privateKey: KeyObject },
  now: Date = new Date(),
): Record<string, string> {
  const timestamp = String(uniqueTimestamp(now.getTime()));
  return {
    [AUTH_HEADERS.agency]: signer.agencyId,
    [AUTH_HEADERS.keyId]: signer.keyId,
    [AUTH_HEADERS.timestamp]: timestamp,
    [AUTH_HEADERS.signature]: edSign(null, requestSigningBytes(req, timestamp), signer.privateKey).toString("base64"),
  };
}

/** True when `signature` is a valid Ed25519 signature of the request by the raw 32-byte public key. */
export function requestSignatureValid(req: RequestToSign, timestamp: string, publicKey: Buffer, signature: Buffer): boolean {
  try {
    return signature.length === 64 && edVerify(null, requestSigningBytes(req, timestamp), publicKeyFromRaw(publicKey), signature);
  } catch {
    return false;
  }
}

let lastTimestamp = 0;
/**
 * Ed25519 is deterministic: two identical requests signed in the same millisecond would carry the
 * same signature, and the second would be refused as a replay. Timestamps from one process never repeat.
 */
function uniqueTimestamp(ms: number): number {
  // Only bump near the last one: a caller signing with a deliberate older time keeps it.
  const t = ms <= lastTimestamp && lastTimestamp - ms < 1000 ? lastTimestamp + 1 : ms;
  lastTimestamp = Math.max(lastTimestamp, t);
  return t;
}
