/**
 * Agency authentication for the ingest API: signed requests. Each request carries the agency id,
 * one of the agency's registered key ids, a timestamp and an Ed25519 signature over
 * method, path, timestamp and the SHA-256 of the body. The same key registry that checks
 * submission signatures decides, so revoking or expiring a key also shuts its HTTP access.
 */
import { createHash, sign as edSign, verify as edVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { SignatureError } from "../shared/errors.ts";
import { assertKeyUsable } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import { publicKeyFromRaw } from "../shared/signing.ts";

export const AUTH_HEADERS = {
  agency: "x-hashrelay-agency",
  keyId: "x-hashrelay-key-id",
  timestamp: "x-hashrelay-timestamp",
  signature: "x-hashrelay-signature",
} as const;

/** How far a request's timestamp may be from the hub's clock. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface RequestToSign {
  readonly method: string;
  /** Path with query string, as sent. */
  readonly path: string;
  readonly body: Buffer;
}

export interface AuthenticatedAgency {
  readonly agencyId: string;
  readonly keyId: string;
}

/**
 * Remembers the signatures of accepted requests while their timestamps are inside the window, so
 * a captured request cannot be sent again. firstUse resolves false for a signature already seen.
 */
export interface RequestReplayGuard {
  firstUse(signatureDigest: Buffer, forgetAfter: Date): Promise<boolean>;
}

function stringToSign(req: RequestToSign, timestamp: string): Buffer {
  const bodyDigest = createHash("sha256").update(req.body).digest("hex");
  return Buffer.from(`hashrelay-request-v1\n${req.method.toUpperCase()}\n${req.path}\n${timestamp}\n${bodyDigest}`);
}

/** Headers a force client adds to a request (used by the ingest CLI and tests). */
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
    [AUTH_HEADERS.signature]: edSign(null, stringToSign(req, timestamp), signer.privateKey).toString("base64"),
  };
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

type HeaderBag = Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Resolves to the agency a request is from, or throws SignatureError (UNAUTHENTICATED, KEY_*). */
export async function authenticateRequest(
  req: RequestToSign & { headers: HeaderBag },
  keys: KeyLookup,
  now: Date = new Date(),
  replay?: RequestReplayGuard,
): Promise<AuthenticatedAgency> {
  const agencyId = header(req.headers, AUTH_HEADERS.agency);
  const keyId = header(req.headers, AUTH_HEADERS.keyId);
  const timestamp = header(req.headers, AUTH_HEADERS.timestamp);
  const signature = header(req.headers, AUTH_HEADERS.signature);
  if (!agencyId || !keyId || !timestamp || !signature) {
    throw new SignatureError(
      "UNAUTHENTICATED",
      `missing one of the headers ${Object.values(AUTH_HEADERS).join(", ")} (see README: Authenticating to the ingest API)`,
    );
  }
  const at = Number(timestamp);
  if (!Number.isFinite(at) || Math.abs(now.getTime() - at) > MAX_CLOCK_SKEW_MS) {
    throw new SignatureError("UNAUTHENTICATED", `request timestamp ${timestamp} is not within 5 minutes of the hub clock`);
  }
  const key = assertKeyUsable(keyId, await keys.findKey(keyId), { ownerKind: "agency", ownerId: agencyId, at: now });
  const sig = Buffer.from(signature, "base64");
  let ok = false;
  try {
    ok = sig.length === 64 && edVerify(null, stringToSign(req, timestamp), publicKeyFromRaw(key.publicKey), sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new SignatureError("UNAUTHENTICATED", `request signature does not verify with key ${keyId}`);
  // Only a verified signature is remembered, so nobody can fill the memory with garbage.
  if (replay && !(await replay.firstUse(createHash("sha256").update(sig).digest(), new Date(at + MAX_CLOCK_SKEW_MS)))) {
    throw new SignatureError("REQUEST_REPLAYED", `this signed request (timestamp ${timestamp}) was already received; sign every request afresh`);
  }
  return { agencyId, keyId };
}
