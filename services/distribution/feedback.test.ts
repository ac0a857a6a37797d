/** The hub's checks of partner feedback, each refusal with its reason code, without a database. */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { randomHex } from "../../test/support/fixtures.ts";
import { HashrelayError } from "../shared/errors.ts";
import { StaticKeyLookup } from "../shared/key-registry.ts";
import type { RegisteredKey } from "../shared/key-registry.ts";
import { topicNames } from "../shared/topics.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { signFeedback } from "../shared/wire/feedback.ts";
import type { UnsignedFeedback } from "../shared/wire/feedback.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem } from "../shared/wire/signing.ts";
import { partnerOfFeedbackTopic, verifyFeedback } from "./feedback.ts";

const codec = new AvroCodec();
const writer = codec.schema("PartnerFeedback").type;
const now = new Date("2026-12-03T12:00:00Z");

function partnerKey(partnerId: string, over: Partial<RegisteredKey> = {}) {
  const pair = generateSigningKeyPair();
  const key: RegisteredKey = {
    keyId: deriveKeyId(partnerId, pair.publicKey),
    ownerKind: "partner",
    ownerId: partnerId,
    publicKey: pair.publicKey,
    validFrom: new Date("2026-01-01T00:00:00Z"),
    validUntil: null,
    revokedAt: null,
    ...over,
  };
  return { key, privateKey: privateKeyFromPem(pair.privateKeyPem) };
}

const hotline = partnerKey("hotline-uk");
const industry = partnerKey("industry-x");
const revoked = partnerKey("hotline-uk", { revokedAt: new Date("2026-06-01T00:00:00Z") });
const agencyNamed = partnerKey("hotline-uk", { ownerKind: "agency" });
const keys = new StaticKeyLookup([hotline.key, industry.key, revoked.key, agencyNamed.key]);

function feedback(signer = hotline, over: Partial<UnsignedFeedback> = {}): UnsignedFeedback {
  return {
    feedbackId: randomUUID(),
    partnerId: "hotline-uk",
    recordRef: randomHex(16),
    kind: "FALSE_POSITIVE",
    matchCount: null,
    timeBucket: null,
    reasonCode: "BENIGN_CONTENT",
    freeText: "synthetic",
    sentAt: now.getTime() - 1000,
    keyId: signer.key.keyId,
    ...over,
  };
}

const encode = (f: UnsignedFeedback, signer = hotline) => codec.encode("PartnerFeedback", signFeedback(writer, f, signer.privateKey));

async function reasonOf(bytes: Buffer, topicPartner = "hotline-uk"): Promise<string> {
  try {
    await verifyFeedback(codec, bytes, topicPartner, keys, now);
    return "accepted";
  } catch (err) {
    if (err instanceof HashrelayError) return err.reason;
    throw err;
  }
}

describe("verifyFeedback", () => {
  it("accepts feedback signed by a usable key of the topic's partner", async () => {
    expect(await reasonOf(encode(feedback()))).toBe("accepted");
  });

  it("refuses each kind of hostile feedback with its reason", async () => {
    expect(await reasonOf(Buffer.from("not avro"))).toBe("BAD_MAGIC");
    expect(await reasonOf(codec.encode("PartnerFeedback", { ...feedback(), signature: Buffer.alloc(0) }))).toBe("MISSING_SIGNATURE");
    expect(await reasonOf(codec.encode("PartnerFeedback", { ...feedback(), signature: Buffer.alloc(64, 1) }))).toBe("BAD_SIGNATURE");
    // Signed by the industry partner's key while claiming the hotline's key id.
    expect(await reasonOf(encode(feedback(), industry))).toBe("BAD_SIGNATURE");
    // The industry partner writing as the hotline (its own key, the hotline's name).
    expect(await reasonOf(encode(feedback(industry), industry))).toBe("KEY_OWNER_MISMATCH");
    // Another partner's feedback replayed onto this partner's topic.
    expect(await reasonOf(encode(feedback(industry, { partnerId: "industry-x" }), industry))).toBe("PARTNER_MISMATCH");
    expect(await reasonOf(encode(feedback(revoked), revoked))).toBe("KEY_REVOKED");
    expect(await reasonOf(encode(feedback(agencyNamed), agencyNamed))).toBe("KEY_OWNER_MISMATCH");
    expect(await reasonOf(encode(feedback(hotline, { keyId: "hotline-uk:unregistered" })))).toBe("UNKNOWN_KEY");
    expect(await reasonOf(encode(feedback(hotline, { kind: "MATCHED" })))).toBe("INVALID_FIELD");
  });

  it("judges the key's validity window when the partner signed, but never in the future", async () => {
    const rotated = partnerKey("hotline-uk", { validUntil: new Date("2026-12-01T00:00:00Z") });
    const lookup = new StaticKeyLookup([rotated.key]);
    const inWindow = encode(feedback(rotated, { sentAt: Date.parse("2026-11-30T00:00:00Z") }), rotated);
    await expect(verifyFeedback(codec, inWindow, "hotline-uk", lookup, now)).resolves.toBeDefined();
    const after = encode(feedback(rotated), rotated);
    await expect(verifyFeedback(codec, after, "hotline-uk", lookup, now)).rejects.toMatchObject({ reason: "KEY_EXPIRED" });
  });
});

describe("partnerOfFeedbackTopic", () => {
  it("reads the partner from a feedback topic of the namespace, and nothing else", () => {
    const names = topicNames("t-1");
    expect(partnerOfFeedbackTopic(names.feedback("hotline-uk"), names.feedbackPrefix)).toBe("hotline-uk");
    expect(partnerOfFeedbackTopic(names.feed("hotline-uk"), names.feedbackPrefix)).toBeNull();
    expect(partnerOfFeedbackTopic("t-2.feedback.hotline-uk.v1", names.feedbackPrefix)).toBeNull();
  });
});
