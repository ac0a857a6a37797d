/**
 * Agency authentication for the ingest API: the hub side of signed requests. The signature scheme
 * itself (headers, the bytes signed) is the contract in services/shared/wire/request-signature.ts;
 * here the same key registry that checks submission signatures decides whether the key is usable,
 * so revoking or expiring a key also shuts its HTTP access, and a replay guard refuses a request
 * seen before.
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
  if (!requestSignatureValid(req, timestamp, key.publicKey, sig)) {
    throw new SignatureError("UNAUTHENTICATED", `request signature does not verify with key ${keyId}`);
  }
  // Only a verified signature is remembered, so nobody can fill the memory with garbage.
  if (replay && !(await replay.firstUse(createHash("sha256").update(sig).digest(), new Date(at + MAX_CLOCK_SKEW_MS)))) {
    throw new SignatureError(
      "REQUEST_REPLAYED",
      `this signed request (timestamp ${timestamp}) was already received; sign every request afresh`,
    );
  }
  return { agencyId, keyId };
}
