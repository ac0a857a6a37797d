import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { samplePartnerFeedback } from "../../../test/support/fixtures.ts";
import { ValidationError } from "../errors.ts";
import { AvroCodec } from "./codec.ts";
import {
  FEEDBACK_SIGNING_DOMAIN,
  FREE_TEXT_MAX,
  feedbackSignatureMatches,
  feedbackSigningBytes,
  isSigned,
  signFeedback,
  timeBucketOf,
  validateFeedback,
} from "./feedback.ts";
import type { UnsignedFeedback } from "./feedback.ts";
import { signingBytes } from "./signing.ts";

const codec = new AvroCodec();
const writer = codec.schema("PartnerFeedback").type;
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519");

function unsigned(overrides: Partial<UnsignedFeedback> = {}): UnsignedFeedback {
  const { signature: _s, ...rest } = samplePartnerFeedback();
  return { ...rest, ...overrides };
}

const matched = (o: Partial<UnsignedFeedback> = {}) =>
  unsigned({ kind: "MATCHED", matchCount: 3, timeBucket: "2026-12-03", reasonCode: null, freeText: null, ...o });

function reason(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return `${err.reason} ${err.detail}`;
    throw err;
  }
  return "accepted";
}

describe("validateFeedback", () => {
  it("accepts each kind with exactly its fields", () => {
    expect(reason(() => validateFeedback(unsigned()))).toBe("accepted");
    expect(reason(() => validateFeedback(matched()))).toBe("accepted");
    const notCsam = unsigned({ kind: "NOT_CSAM_IN_OUR_JURISDICTION", reasonCode: null, freeText: null });
    expect(reason(() => validateFeedback(notCsam))).toBe("accepted");
  });

  it.each([
    ["feedbackId", unsigned({ feedbackId: "not-a-uuid" }), /feedbackId must be a lower-case UUID/],
    ["recordRef", unsigned({ recordRef: "00000000-0000-4000-8000-000000000001" }), /recordRef must be the 32 hex/],
    ["partnerId", unsigned({ partnerId: "Bad Partner" }), /partnerId is not a partner id/],
    ["reasonCode", unsigned({ reasonCode: "I_SAY_SO" }), /reasonCode must be one of/],
    ["reasonCode missing", unsigned({ reasonCode: null }), /reasonCode must be one of/],
    ["freeText", unsigned({ freeText: "x".repeat(FREE_TEXT_MAX + 1) }), /freeText exceeds 1000/],
    ["matchCount on FP", unsigned({ matchCount: 2 }), /matchCount is only for MATCHED/],
    ["freeText on MATCHED", matched({ freeText: "user 1234 uploaded it" }), /freeText is only for FALSE_POSITIVE/],
    ["zero matches", matched({ matchCount: 0 }), /matchCount must be a whole number/],
    ["timestamp bucket", matched({ timeBucket: "2026-12-03T10:15:00Z" }), /timeBucket must be a UTC day/],
    ["impossible day", matched({ timeBucket: "2026-02-30" }), /timeBucket must be a UTC day/],
    ["no time bucket", matched({ timeBucket: null }), /timeBucket must be a UTC day/],
  ])("refuses %s with INVALID_FIELD", (_name, feedback, message) => {
    expect(reason(() => validateFeedback(feedback))).toMatch(/^INVALID_FIELD /);
    expect(reason(() => validateFeedback(feedback))).toMatch(message);
  });

  it("buckets a time to its UTC day", () => {
    expect(timeBucketOf(Date.UTC(2026, 11, 3, 23, 59, 59))).toBe("2026-12-03");
  });
});

describe("feedback signature", () => {
  it("covers the domain tag and the body without the signature field", () => {
    const f = unsigned();
    const bytes = feedbackSigningBytes(writer, f);
    expect(bytes.subarray(0, FEEDBACK_SIGNING_DOMAIN.length).toString()).toBe("hashrelay/sig/v1/PartnerFeedback\n");
    const encoded = codec.encode("PartnerFeedback", signFeedback(writer, f, privateKey));
    // single-object header (10 bytes), body, then the signature as a 2-byte length + 64 bytes
    expect(encoded.subarray(10, encoded.length - 66)).toEqual(bytes.subarray(FEEDBACK_SIGNING_DOMAIN.length));
  });

  it("verifies with the signer's key only, and not after any field changes", () => {
    const signed = signFeedback(writer, unsigned(), privateKey);
    expect(isSigned(signed)).toBe(true);
    expect(feedbackSignatureMatches(writer, signed, publicKey)).toBe(true);
    expect(feedbackSignatureMatches(writer, signed, other.publicKey)).toBe(false);
    for (const change of [{ recordRef: "f".repeat(32) }, { partnerId: "industry-x" }, { kind: "MATCHED" as const }, { keyId: "x:1" }]) {
      expect(feedbackSignatureMatches(writer, { ...signed, ...change }, publicKey)).toBe(false);
    }
  });

  it("an unsigned record is told apart from a badly signed one", () => {
    const unsignedRecord = { ...unsigned(), signature: Buffer.alloc(0) };
    expect(isSigned(unsignedRecord)).toBe(false);
    expect(feedbackSignatureMatches(writer, unsignedRecord, publicKey)).toBe(false);
  });

  it("has a domain of its own: the same body never verifies as a submission or feed record signature", () => {
    const f = unsigned();
    const asFeed = Buffer.concat([
      Buffer.from("hashrelay/sig/v1/FeedRecord\n"),
      feedbackSigningBytes(writer, f).subarray(FEEDBACK_SIGNING_DOMAIN.length),
    ]);
    expect(asFeed.equals(feedbackSigningBytes(writer, f))).toBe(false);
    expect(() => signingBytes("FeedRecord", writer, f)).not.toThrow();
    expect(signingBytes("FeedRecord", writer, f).equals(feedbackSigningBytes(writer, f))).toBe(false);
  });
});
