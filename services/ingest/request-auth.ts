/**
 * Agency authentication for the ingest API: the hub side of signed requests. The signature scheme
 * itself (headers, the bytes signed) is the contract in services/shared/wire/request-signature.ts;
 * here the same key registry that checks submission signatures decides whether the key is usable,
 * so revoking or expiring a key also shuts its HTTP access, and a replay guard refuses a request
 * seen before (for a submission, the ledger's look-up remembers the request in the same round trip).
 */
import { createHash } from "node:crypto";
import { SignatureError } from "../shared/errors.ts";
import { assertKeyUsable } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import { AUTH_HEADERS, requestSignatureValid } from "../shared/wire/request-signature.ts";
import type { RequestToSign } from "../shared/wire/request-signature.ts";

/** How far a request's timestamp may be from the hub's clock. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

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

/** A verified request's signature, to be remembered until its timestamp leaves the window. */
export interface ReplayClaim {
  readonly signatureDigest: Buffer;
  readonly forgetAfter: Date;
  /** The request's timestamp header, for the refusal's text. */
  readonly timestamp: string;
}

/** A verified request, its replay check still to make (with the guard, or in the ledger's look-up). */
export interface VerifiedRequest extends AuthenticatedAgency {
  readonly claim: ReplayClaim;
}

/** The refusal of a signed request seen before. */
export function requestReplayed(claim: ReplayClaim): SignatureError {
  return new SignatureError(
    "REQUEST_REPLAYED",
    `this signed request (timestamp ${claim.timestamp}) was already received; sign every request afresh`,
  );
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
  const { agencyId, keyId, claim } = await verifyRequest(req, keys, now);
  if (replay && !(await replay.firstUse(claim.signatureDigest, claim.forgetAfter))) throw requestReplayed(claim);
  return { agencyId, keyId };
}

/**
 * Checks a request's headers, timestamp, key and signature, and leaves the replay check to the
 * caller: only a verified signature is ever remembered, so nobody can fill the memory with garbage.
 */
export async function verifyRequest(
  req: RequestToSign & { headers: HeaderBag },
  keys: KeyLookup,
  now: Date = new Date(),
): Promise<VerifiedRequest> {
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
  if (!requestSignatureValid(req, timestamp, key.publicKey, sig)) {
    throw new SignatureError("UNAUTHENTICATED", `request signature does not verify with key ${keyId}`);
  }
  const claim = { signatureDigest: createHash("sha256").update(sig).digest(), forgetAfter: new Date(at + MAX_CLOCK_SKEW_MS), timestamp };
  return { agencyId, keyId, claim };
}
