import { describe, expect, it } from "vitest";
import { AvroCodec } from "./codec.ts";
import { SignatureError } from "../errors.ts";
import { StaticKeyLookup, verifySignedRecord } from "../key-registry.ts";
import type { RegisteredKey } from "../key-registry.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem, signRecord } from "./signing.ts";
import type { Submission } from "./records.ts";
import { unsignedSubmission } from "../../../test/support/fixtures.ts";

const codec = new AvroCodec();
const writer = codec.schema("Submission");
const HOUR = 3_600_000;
const now = new Date();

function agencyKey(agencyId: string, window: Partial<RegisteredKey> = {}) {
  const pair = generateSigningKeyPair();
  const key: RegisteredKey = {
    keyId: deriveKeyId(agencyId, pair.publicKey),
    ownerKind: "agency",
    ownerId: agencyId,
    publicKey: pair.publicKey,
    validFrom: new Date(now.getTime() - HOUR),
    validUntil: null,
    revokedAt: null,
    ...window,
  };
  return { key, privateKey: privateKeyFromPem(pair.privateKeyPem) };
}

function signedBy(k: ReturnType<typeof agencyKey>, overrides: Partial<Submission> = {}): Submission {
  const unsigned = unsignedSubmission({ agencyId: k.key.ownerId, keyId: k.key.keyId });
  return { ...signRecord("Submission", writer.type, unsigned, k.privateKey), ...overrides };
}

async function reasonOf(record: Submission, keys: RegisteredKey[], agencyId = record.agencyId): Promise<string> {
  try {
    await verifySignedRecord("Submission", writer.type, record, new StaticKeyLookup(keys), {
      ownerKind: "agency",
      ownerId: agencyId,
      at: now,
    });
    return "OK";
  } catch (err) {
    if (err instanceof SignatureError) return err.reason;
    throw err;
  }
}

describe("submission signatures", () => {
  const force = agencyKey("force-a");

  it("verifies a correctly signed submission, also after an Avro round trip", async () => {
    const record = signedBy(force);
    expect(await reasonOf(record, [force.key])).toBe("OK");
    const decoded = codec.decode("Submission", codec.encode("Submission", record));
    expect(await reasonOf(decoded.value, [force.key])).toBe("OK");
  });

  it("refuses tampered hashes, grade, op and keyId", async () => {
    const record = signedBy(force);
    const first = record.hashes[0];
    if (!first) throw new Error("fixture has no hashes");
    const flipped = { ...first, value: first.value.replace(/^./, (c) => (c === "0" ? "1" : "0")) };
    expect(await reasonOf({ ...record, hashes: [flipped, ...record.hashes.slice(1)] }, [force.key])).toBe("BAD_SIGNATURE");
    expect(await reasonOf({ ...record, grade: { ...record.grade, uk: "C" } }, [force.key])).toBe("BAD_SIGNATURE");
    expect(await reasonOf({ ...record, op: "RETRACT" }, [force.key])).toBe("BAD_SIGNATURE");
    expect(await reasonOf({ ...record, signature: Buffer.alloc(64) }, [force.key])).toBe("BAD_SIGNATURE");
    expect(await reasonOf({ ...record, signature: Buffer.alloc(3) }, [force.key])).toBe("BAD_SIGNATURE");
    // A second key of the same agency, registered, but not the one that signed.
    const other = agencyKey("force-a");
    expect(await reasonOf({ ...record, keyId: other.key.keyId }, [force.key, other.key])).toBe("BAD_SIGNATURE");
  });

  it("refuses a flipped bit anywhere in the encoded bytes", async () => {
    const bytes = codec.encode("Submission", signedBy(force));
    // Flip a byte inside the submissionId string (header is 10 bytes, then a length varint).
    bytes[12] = (bytes[12] as number) ^ 0x01;
    const decoded = codec.decode("Submission", bytes);
    expect(await reasonOf(decoded.value, [force.key])).toBe("BAD_SIGNATURE");
  });

  it("refuses an unknown key", async () => {
    expect(await reasonOf(signedBy(force), [])).toBe("UNKNOWN_KEY");
  });

  it("refuses a revoked key", async () => {
    const revoked = agencyKey("force-a", { revokedAt: new Date(now.getTime() - 60_000) });
    expect(await reasonOf(signedBy(revoked), [revoked.key])).toBe("KEY_REVOKED");
  });

  it("still accepts a key whose revocation is scheduled in the future", async () => {
    const later = agencyKey("force-a", { revokedAt: new Date(now.getTime() + HOUR) });
    expect(await reasonOf(signedBy(later), [later.key])).toBe("OK");
  });

  it("refuses an expired key and one not yet valid", async () => {
    const expired = agencyKey("force-a", {
      validFrom: new Date(now.getTime() - 48 * HOUR),
      validUntil: new Date(now.getTime() - HOUR),
    });
    expect(await reasonOf(signedBy(expired), [expired.key])).toBe("KEY_EXPIRED");
    const future = agencyKey("force-a", { validFrom: new Date(now.getTime() + HOUR) });
    expect(await reasonOf(signedBy(future), [future.key])).toBe("KEY_NOT_YET_VALID");
  });

  it("judges the validity window at the signing time, revocation at processing time", async () => {
    const rotatedOut = agencyKey("force-a", { validFrom: new Date(now.getTime() - 48 * HOUR), validUntil: new Date(now.getTime() - HOUR) });
    const signedAt = (k: ReturnType<typeof agencyKey>, at: number) =>
      signRecord("Submission", writer.type, unsignedSubmission({ agencyId: "force-a", keyId: k.key.keyId, submittedAt: at }), k.privateKey);
    const check = async (record: Submission, key: RegisteredKey) => {
      try {
        await verifySignedRecord("Submission", writer.type, record, new StaticKeyLookup([key]), {
          ownerKind: "agency",
          ownerId: "force-a",
          at: now,
          signedAt: new Date(record.submittedAt),
        });
        return "OK";
      } catch (err) {
        if (err instanceof SignatureError) return err.reason;
        throw err;
      }
    };
    // Signed two hours ago, inside the window: still verifies an hour after the key expired.
    expect(await check(signedAt(rotatedOut, now.getTime() - 2 * HOUR), rotatedOut.key)).toBe("OK");
    // Signed after the window closed, or before it opened: refused.
    expect(await check(signedAt(rotatedOut, now.getTime() - HOUR / 2), rotatedOut.key)).toBe("KEY_EXPIRED");
    expect(await check(signedAt(rotatedOut, now.getTime() - 72 * HOUR), rotatedOut.key)).toBe("KEY_NOT_YET_VALID");
    // A claimed signing time in the future is judged as now.
    const notYet = agencyKey("force-a", { validFrom: new Date(now.getTime() + HOUR) });
    expect(await check(signedAt(notYet, now.getTime() + 2 * HOUR), notYet.key)).toBe("KEY_NOT_YET_VALID");
    // Backdating does not escape a revocation.
    const revoked = agencyKey("force-a", { revokedAt: new Date(now.getTime() - HOUR) });
    expect(await check(signedAt(revoked, now.getTime() - 2 * HOUR), revoked.key)).toBe("KEY_REVOKED");
  });

  it("refuses one agency signing as another", async () => {
    const other = agencyKey("force-b");
    const record = signedBy(other, { agencyId: "force-a" });
    expect(await reasonOf(record, [other.key], "force-a")).toBe("KEY_OWNER_MISMATCH");
  });
});
