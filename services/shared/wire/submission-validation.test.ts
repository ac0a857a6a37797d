import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../errors.ts";
import type { ReasonCode } from "../errors.ts";
import type { Submission } from "./records.ts";
import { randomHex, unsignedSubmission } from "../../../test/support/fixtures.ts";
import { normaliseHash, validateDraft, validateSubmission } from "./submission-validation.ts";
import type { SubmissionDraft } from "./submission-validation.ts";

function reasonOf(fn: () => unknown): { reason: ReasonCode; detail: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    const e = err as ValidationError;
    return { reason: e.reason, detail: e.detail };
  }
  throw new Error("expected a ValidationError");
}

function expectReason(fn: () => unknown, reason: ReasonCode, detail?: RegExp): void {
  const got = reasonOf(fn);
  expect(got.reason).toBe(reason);
  if (detail) expect(got.detail).toMatch(detail);
}

function draft(overrides: Partial<SubmissionDraft> = {}): SubmissionDraft {
  const { agencyId: _a, keyId: _k, submittedAt: _s, ...d } = unsignedSubmission();
  return { ...d, ...overrides };
}

function signed(overrides: Partial<Submission> = {}): Submission {
  return { ...unsignedSubmission(), signature: randomBytes(64), ...overrides };
}

describe("normaliseHash", () => {
  it("accepts md5/sha1/sha256 hex and lowers upper case", () => {
    const md5 = randomHex(16);
    expect(normaliseHash("md5", md5.toUpperCase())).toEqual({ alg: "md5", value: md5, quality: null });
    const sha1 = randomHex(20);
    expect(normaliseHash("sha1", sha1)).toEqual({ alg: "sha1", value: sha1, quality: null });
    const sha256 = randomHex(32);
    expect(normaliseHash("sha256", ` ${sha256.toUpperCase()}\n`)).toEqual({ alg: "sha256", value: sha256, quality: null });
  });

  it("takes the algorithm name case-insensitively", () => {
    expect(normaliseHash("MD5", randomHex(16)).alg).toBe("md5");
  });

  it("refuses wrong lengths", () => {
    expectReason(() => normaliseHash("md5", randomHex(16).slice(1)), "INVALID_HASH", /md5 must be 32 hex characters, got 31/);
    expectReason(() => normaliseHash("md5", randomHex(17)), "INVALID_HASH", /got 34/);
    expectReason(() => normaliseHash("sha1", randomHex(16)), "INVALID_HASH", /40/);
    expectReason(() => normaliseHash("sha256", randomHex(20)), "INVALID_HASH", /64/);
    expectReason(() => normaliseHash("md5", ""), "INVALID_HASH");
  });

  it("refuses non-hex", () => {
    expectReason(() => normaliseHash("md5", `g${randomHex(16).slice(1)}`), "INVALID_HASH", /hexadecimal; found "g" at position 0/);
    expectReason(() => normaliseHash("sha1", `0x${randomHex(19)}`), "INVALID_HASH", /hexadecimal/);
    expectReason(() => normaliseHash("md5", 12345 as unknown as string), "INVALID_HASH", /must be a string/);
  });

  it("refuses unknown algorithms", () => {
    expectReason(() => normaliseHash("sha512", randomHex(64)), "UNSUPPORTED_ALGORITHM", /sha512/);
    expectReason(() => normaliseHash("crc32", "deadbeef"), "UNSUPPORTED_ALGORITHM");
  });

  it("takes pdq with an optional 0-100 integer quality", () => {
    const pdq = randomHex(32);
    expect(normaliseHash("pdq", pdq.toUpperCase(), 90)).toEqual({ alg: "pdq", value: pdq, quality: 90 });
    expect(normaliseHash("pdq", pdq)).toEqual({ alg: "pdq", value: pdq, quality: null });
    expect(normaliseHash("pdq", pdq, null).quality).toBeNull();
    expect(normaliseHash("pdq", pdq, 0).quality).toBe(0);
    expect(normaliseHash("pdq", pdq, 100).quality).toBe(100);
  });

  it("refuses bad pdq quality, and quality on other algorithms", () => {
    const pdq = randomHex(32);
    for (const q of [-1, 101, 50.5, Number.NaN]) {
      expectReason(() => normaliseHash("pdq", pdq, q), "INVALID_HASH", /quality/);
    }
    expectReason(() => normaliseHash("pdq", pdq, "90" as unknown as number), "INVALID_HASH", /quality/);
    expectReason(() => normaliseHash("md5", randomHex(16), 80), "INVALID_HASH", /only to pdq/);
    expectReason(() => normaliseHash("pdq", randomHex(31)), "INVALID_HASH", /64/);
  });

  it("accepts PhotoDNA as base64 or hex, giving the same canonical base64", () => {
    const bytes = randomBytes(144);
    const fromB64 = normaliseHash("photodna", bytes.toString("base64"));
    const fromHex = normaliseHash("photodna", bytes.toString("hex"));
    const fromHexUpper = normaliseHash("photodna", bytes.toString("hex").toUpperCase());
    const fromUrlSafe = normaliseHash("photodna", bytes.toString("base64url"));
    expect(fromB64).toEqual({ alg: "photodna", value: bytes.toString("base64"), quality: null });
    expect(fromHex).toEqual(fromB64);
    expect(fromHexUpper).toEqual(fromB64);
    expect(fromUrlSafe).toEqual(fromB64);
    expect(Buffer.from(fromB64.value, "base64")).toEqual(bytes);
  });

  it("refuses PhotoDNA of the wrong size or form", () => {
    expectReason(() => normaliseHash("photodna", randomBytes(143).toString("base64")), "INVALID_HASH", /144 bytes, got 143/);
    expectReason(() => normaliseHash("photodna", randomBytes(145).toString("base64")), "INVALID_HASH", /144 bytes/);
    expectReason(() => normaliseHash("photodna", randomBytes(143).toString("hex")), "INVALID_HASH", /144 bytes/);
    expectReason(() => normaliseHash("photodna", `${randomBytes(144).toString("base64").slice(1)}!`), "INVALID_HASH", /base64/);
    expectReason(() => normaliseHash("photodna", ""), "INVALID_HASH");
  });
});

describe("validateDraft", () => {
  it("passes a good draft and returns it normalised", () => {
    const md5 = randomHex(16);
    const d = draft({
      hashes: [
        { alg: "md5", value: md5.toUpperCase(), quality: null },
        { alg: "pdq", value: randomHex(32), quality: 77 },
      ],
      grade: { uk: "B", ics: undefined as unknown as null, vics: null },
      lawEnforcement: {
        caseRef: "  ",
        series: " S-1 ",
        victimIdentified: null,
        offenderIdentified: true,
        isDistributed: null,
        graderRef: null,
      },
    });
    const out = validateDraft(d);
    expect(out.hashes[0]).toEqual({ alg: "md5", value: md5, quality: null });
    expect(out.grade).toEqual({ uk: "B", ics: null, vics: null });
    expect(out.lawEnforcement.caseRef).toBeNull();
    expect(out.lawEnforcement.series).toBe("S-1");
    expect(out.lawEnforcement.offenderIdentified).toBe(true);
  });

  it("defaults a missing lawEnforcement to all-null", () => {
    const out = validateDraft(draft({ lawEnforcement: undefined as unknown as SubmissionDraft["lawEnforcement"] }));
    expect(Object.values(out.lawEnforcement).every((v) => v === null)).toBe(true);
  });

  it("needs at least one hash", () => {
    expectReason(() => validateDraft(draft({ hashes: [] })), "NO_HASHES");
    expectReason(() => validateDraft(draft({ hashes: undefined as unknown as [] })), "INVALID_FIELD", /hashes/);
  });

  it("drops exact duplicate hashes silently", () => {
    const md5 = randomHex(16);
    const out = validateDraft(
      draft({
        hashes: [
          { alg: "md5", value: md5, quality: null },
          { alg: "md5", value: md5.toUpperCase(), quality: null },
        ],
      }),
    );
    expect(out.hashes).toEqual([{ alg: "md5", value: md5, quality: null }]);
  });

  it("refuses two different values of one exact algorithm (md5 conflict)", () => {
    const d = draft({
      hashes: [
        { alg: "md5", value: randomHex(16), quality: null },
        { alg: "sha1", value: randomHex(20), quality: null },
        { alg: "md5", value: randomHex(16), quality: null },
      ],
    });
    expectReason(() => validateDraft(d), "INVALID_HASH", /hashes\[2\]: a second, different md5 \(hashes\[0\]/);
  });

  it("allows several PDQ and PhotoDNA hashes (video frames)", () => {
    const d = draft({
      contentType: "video",
      hashes: [
        { alg: "pdq", value: randomHex(32), quality: 80 },
        { alg: "pdq", value: randomHex(32), quality: 60 },
        { alg: "photodna", value: randomBytes(144).toString("base64"), quality: null },
        { alg: "photodna", value: randomBytes(144).toString("base64"), quality: null },
      ],
    });
    expect(validateDraft(d).hashes).toHaveLength(4);
  });

  it("reports the path of a bad hash", () => {
    const d = draft({
      hashes: [
        { alg: "md5", value: randomHex(16), quality: null },
        { alg: "sha1", value: "xyz", quality: null },
      ],
    });
    expectReason(() => validateDraft(d), "INVALID_HASH", /^hashes\[1\]\.value: sha1/);
    const e = draft({ hashes: [{ alg: "whirlpool" as "md5", value: randomHex(64), quality: null }] });
    expectReason(() => validateDraft(e), "UNSUPPORTED_ALGORITHM", /^hashes\[0\]\.alg/);
  });

  it("checks the grade", () => {
    expectReason(() => validateDraft(draft({ grade: { uk: "D" as "A", ics: null, vics: null } })), "INVALID_CATEGORY", /grade\.uk/);
    expectReason(() => validateDraft(draft({ grade: { uk: "A", ics: "C1" as "A1", vics: null } })), "INVALID_CATEGORY", /grade\.ics/);
    expectReason(
      () => validateDraft(draft({ grade: { uk: "A", ics: null, vics: { profile: "vics-2.0", code: 1.5 } } })),
      "INVALID_CATEGORY",
      /grade\.vics\.code/,
    );
    expectReason(
      () => validateDraft(draft({ grade: { uk: "A", ics: null, vics: { profile: "", code: 1 } } })),
      "INVALID_CATEGORY",
      /profile/,
    );
    expectReason(() => validateDraft(draft({ grade: null as unknown as SubmissionDraft["grade"] })), "INVALID_CATEGORY", /grade/);
    for (const uk of ["A", "B", "C", "PROHIBITED_NONPHOTO", "NON_INDECENT", "UNGRADED"] as const) {
      expect(validateDraft(draft({ grade: { uk, ics: null, vics: null } })).grade.uk).toBe(uk);
    }
    expect(validateDraft(draft({ grade: { uk: "A", ics: "A2", vics: { profile: "vics-1.x", code: 1 } } })).grade).toEqual({
      uk: "A",
      ics: "A2",
      vics: { profile: "vics-1.x", code: 1 },
    });
  });

  it("checks contentType, op and gradingStatus", () => {
    expectReason(() => validateDraft(draft({ contentType: "audio" as "image" })), "INVALID_FIELD", /contentType/);
    expectReason(() => validateDraft(draft({ op: "DELETE" as "ASSERT" })), "INVALID_FIELD", /^op/);
    expectReason(() => validateDraft(draft({ gradingStatus: "final" as "confirmed" })), "INVALID_FIELD", /gradingStatus/);
    expect(validateDraft(draft({ contentType: "video", op: "RETRACT" })).op).toBe("RETRACT");
  });

  it("checks the submissionId pattern and length", () => {
    expect(validateDraft(draft({ submissionId: "force-a:file_1.csv:17" })).submissionId).toBe("force-a:file_1.csv:17");
    expect(validateDraft(draft({ submissionId: "x".repeat(128) })).submissionId).toHaveLength(128);
    for (const bad of ["", "x".repeat(129), "a b", "a/b", "é", undefined]) {
      expectReason(() => validateDraft(draft({ submissionId: bad as string })), "INVALID_FIELD", /submissionId/);
    }
  });

  it("wants real booleans and short texts in lawEnforcement", () => {
    const le = draft().lawEnforcement;
    expectReason(
      () => validateDraft(draft({ lawEnforcement: { ...le, isDistributed: "true" as unknown as boolean } })),
      "INVALID_FIELD",
      /lawEnforcement\.isDistributed/,
    );
    expectReason(() => validateDraft(draft({ lawEnforcement: { ...le, caseRef: "x".repeat(257) } })), "INVALID_FIELD", /caseRef/);
  });
});

describe("validateSubmission", () => {
  it("passes a good signed submission without changing it", () => {
    const sub = signed();
    const before = { ...structuredClone({ ...sub, signature: null }), signature: Buffer.from(sub.signature) };
    expect(() => validateSubmission(sub)).not.toThrow();
    expect(sub).toEqual(before);
  });

  it("takes the hub clock as a Date or epoch ms", () => {
    const sub = signed({ submittedAt: Date.UTC(2030, 0, 1) });
    expectReason(() => validateSubmission(sub, new Date(Date.UTC(2029, 11, 31))), "INVALID_FIELD", /future/);
    expect(() => validateSubmission(sub, Date.UTC(2030, 0, 1))).not.toThrow();
  });

  it("needs agencyId and keyId", () => {
    expectReason(() => validateSubmission(signed({ agencyId: "" })), "INVALID_FIELD", /^agencyId/);
    expectReason(() => validateSubmission(signed({ keyId: "  " })), "INVALID_FIELD", /^keyId/);
  });

  it("needs a 64-byte signature", () => {
    expectReason(() => validateSubmission(signed({ signature: randomBytes(63) })), "INVALID_FIELD", /signature.*64 bytes.*got 63/);
    expectReason(() => validateSubmission(signed({ signature: Buffer.alloc(0) })), "INVALID_FIELD", /signature/);
    expectReason(() => validateSubmission(signed({ signature: "abc" as unknown as Buffer })), "INVALID_FIELD", /signature/);
  });

  it("needs a sane submittedAt no more than 10 minutes ahead", () => {
    const now = Date.now();
    expect(() => validateSubmission(signed({ submittedAt: now + 9 * 60_000 }), now)).not.toThrow();
    expectReason(() => validateSubmission(signed({ submittedAt: now + 11 * 60_000 }), now), "INVALID_FIELD", /future/);
    expectReason(() => validateSubmission(signed({ submittedAt: Math.floor(now / 1000) }), now), "INVALID_FIELD", /seconds/);
    expectReason(() => validateSubmission(signed({ submittedAt: 1.5 }), now), "INVALID_FIELD", /submittedAt/);
    expectReason(() => validateSubmission(signed({ submittedAt: -1 }), now), "INVALID_FIELD", /submittedAt/);
    expectReason(() => validateSubmission(signed({ submittedAt: "2025-01-01" as unknown as number }), now), "INVALID_FIELD", /submittedAt/);
  });

  it("refuses non-canonical hashes rather than rewriting signed content", () => {
    const md5 = randomHex(16).toUpperCase();
    const sub = signed({ hashes: [{ alg: "md5", value: md5, quality: null }] });
    expectReason(() => validateSubmission(sub), "INVALID_HASH", /hashes\[0\]\.value: not in canonical form/);
    expect(sub.hashes[0]?.value).toBe(md5);
  });

  it("refuses repeated hashes in a signed submission", () => {
    const md5 = randomHex(16);
    const sub = signed({
      hashes: [
        { alg: "md5", value: md5, quality: null },
        { alg: "md5", value: md5, quality: null },
      ],
    });
    expectReason(() => validateSubmission(sub), "INVALID_HASH", /hashes\[1\]: repeats hashes\[0\]/);
  });

  it("applies the draft rules", () => {
    expectReason(() => validateSubmission(signed({ hashes: [] })), "NO_HASHES");
    expectReason(() => validateSubmission(signed({ submissionId: "has space" })), "INVALID_FIELD", /submissionId/);
    expectReason(() => validateSubmission(signed({ grade: { uk: "Z" as "A", ics: null, vics: null } })), "INVALID_CATEGORY");
    expectReason(
      () =>
        validateSubmission(
          signed({
            hashes: [
              { alg: "sha256", value: randomHex(32), quality: null },
              { alg: "sha256", value: randomHex(32), quality: null },
            ],
          }),
        ),
      "INVALID_HASH",
      /second, different sha256/,
    );
  });

  it("refuses an incomplete record (missing nullable fields)", () => {
    const sub = signed();
    const le = { ...sub.lawEnforcement } as Partial<Submission["lawEnforcement"]>;
    delete le.graderRef;
    expectReason(() => validateSubmission({ ...sub, lawEnforcement: le as Submission["lawEnforcement"] }), "INVALID_FIELD", /graderRef/);
    expectReason(() => validateSubmission(null as unknown as Submission), "INVALID_FIELD");
  });
});
