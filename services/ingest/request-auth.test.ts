import { describe, expect, it } from "vitest";
import { SignatureError } from "../shared/errors.ts";
import { StaticKeyLookup } from "../shared/key-registry.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem } from "../shared/wire/signing.ts";
import { signRequest } from "../shared/wire/request-signature.ts";
import { authenticateRequest } from "./request-auth.ts";
import type { RequestReplayGuard } from "./request-auth.ts";

const pair = generateSigningKeyPair();
const keyId = deriveKeyId("force-a", pair.publicKey);
const signer = { agencyId: "force-a", keyId, privateKey: privateKeyFromPem(pair.privateKeyPem) };
const keys = new StaticKeyLookup([
  { keyId, ownerKind: "agency", ownerId: "force-a", publicKey: pair.publicKey, validFrom: new Date(0), validUntil: null, revokedAt: null },
]);

/** The guard's contract, held in memory. */
function memoryGuard(): RequestReplayGuard & { seen: Map<string, Date> } {
  const seen = new Map<string, Date>();
  return {
    seen,
    async firstUse(digest, forgetAfter) {
      const k = digest.toString("hex");
      if (seen.has(k)) return false;
      seen.set(k, forgetAfter);
      return true;
    },
  };
}

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (err instanceof SignatureError) return err.reason;
    throw err;
  }
}

describe("signed requests", () => {
  const req = { method: "POST", path: "/v1/submissions", body: Buffer.from("[]") };

  it("accepts a request once; the same signed request again is REQUEST_REPLAYED", async () => {
    const guard = memoryGuard();
    const now = new Date();
    const headers = signRequest(req, signer, now);
    expect(await reasonOf(authenticateRequest({ ...req, headers }, keys, now, guard))).toBe("OK");
    expect(await reasonOf(authenticateRequest({ ...req, headers }, keys, now, guard))).toBe("REQUEST_REPLAYED");
    // remembered until the timestamp can no longer pass the clock-skew check
    const [forgetAfter] = [...guard.seen.values()];
    expect(forgetAfter?.getTime()).toBe(Number(headers["x-hashrelay-timestamp"]) + 5 * 60_000);
  });

  it("remembers nothing for a request that fails authentication", async () => {
    const guard = memoryGuard();
    const headers = { ...signRequest(req, signer), "x-hashrelay-signature": Buffer.alloc(64, 7).toString("base64") };
    expect(await reasonOf(authenticateRequest({ ...req, headers }, keys, new Date(), guard))).toBe("UNAUTHENTICATED");
    expect(guard.seen.size).toBe(0);
  });

  it("never gives two requests of one process the same signature, even within a millisecond", () => {
    const at = new Date();
    const a = signRequest(req, signer, at);
    const b = signRequest(req, signer, at);
    expect(a["x-hashrelay-signature"]).not.toBe(b["x-hashrelay-signature"]);
  });

  it("refuses a body changed after signing and a timestamp outside five minutes", async () => {
    const now = new Date();
    const headers = signRequest(req, signer, now);
    expect(await reasonOf(authenticateRequest({ ...req, body: Buffer.from("[1]"), headers }, keys, now))).toBe("UNAUTHENTICATED");
    const old = signRequest(req, signer, new Date(now.getTime() - 6 * 60_000));
    expect(await reasonOf(authenticateRequest({ ...req, headers: old }, keys, now))).toBe("UNAUTHENTICATED");
  });
});
