import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../errors.ts";
import type { ReasonCode } from "../errors.ts";
import type { Submission } from "./records.ts";
import { randomHex, unsignedSubmission } from "../../../test/support/fixtures.ts";
import { parseSubmissionBatch, submissionFromJson, submissionToJson } from "./submission-json.ts";

function signed(overrides: Partial<Submission> = {}): Submission {
  return { ...unsignedSubmission(), signature: randomBytes(64), ...overrides };
}

/** A wire-form object to poke at. */
function wire(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(JSON.parse(JSON.stringify(submissionToJson(signed()))) as Record<string, unknown>), ...overrides };
}

function expectReason(fn: () => unknown, reason: ReasonCode, detail?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  expect((caught as ValidationError).reason).toBe(reason);
  if (detail) expect((caught as ValidationError).detail).toMatch(detail);
}

describe("submissionFromJson / submissionToJson", () => {
  it("round-trips a full submission through JSON text", () => {
    const sub = signed({
      hashes: [
        { alg: "md5", value: randomHex(16), quality: null },
        { alg: "sha256", value: randomHex(32), quality: null },
        { alg: "pdq", value: randomHex(32), quality: 88 },
        { alg: "photodna", value: randomBytes(144).toString("base64"), quality: null },
      ],
      grade: { uk: "C", ics: "B2", vics: { profile: "vics-2.0", code: 1 } },
    });
    const text = JSON.stringify(submissionToJson(sub));
    expect(submissionFromJson(JSON.parse(text))).toEqual(sub);
    expect(submissionFromJson(text)).toEqual(sub);
    expect(submissionFromJson(Buffer.from(text))).toEqual(sub);
  });

  it("round-trips all-null optional fields, leaving them out of the JSON", () => {
    const sub = signed({
      grade: { uk: "UNGRADED", ics: null, vics: null },
      lawEnforcement: {
        caseRef: null,
        series: null,
        victimIdentified: null,
        offenderIdentified: null,
        isDistributed: null,
        graderRef: null,
      },
    });
    const json = submissionToJson(sub) as unknown as Record<string, unknown>;
    expect(json["lawEnforcement"]).toBeUndefined();
    expect(json["grade"]).toEqual({ uk: "UNGRADED" });
    expect((json["hashes"] as { quality?: unknown }[])[0]).not.toHaveProperty("quality");
    expect(typeof json["signature"]).toBe("string");
    expect(submissionFromJson(JSON.parse(JSON.stringify(json)))).toEqual(sub);
  });

  it("treats absent and null optional fields alike", () => {
    const md5 = randomHex(16);
    const base = wire({ hashes: [{ alg: "md5", value: md5 }], grade: { uk: "A" } });
    delete base["lawEnforcement"];
    const a = submissionFromJson(base);
    expect(a.hashes).toEqual([{ alg: "md5", value: md5, quality: null }]);
    expect(a.grade).toEqual({ uk: "A", ics: null, vics: null });
    expect(a.lawEnforcement).toEqual({
      caseRef: null,
      series: null,
      victimIdentified: null,
      offenderIdentified: null,
      isDistributed: null,
      graderRef: null,
    });
    const b = submissionFromJson(
      wire({ hashes: [{ alg: "md5", value: md5, quality: null }], grade: { uk: "A", ics: null, vics: null }, lawEnforcement: null }),
    );
    expect(b.hashes).toEqual(a.hashes);
    expect(b.grade).toEqual(a.grade);
    expect(b.lawEnforcement).toEqual(a.lawEnforcement);
    const c = submissionFromJson(wire({ lawEnforcement: { caseRef: "SYN-1", victimIdentified: false } }));
    expect(c.lawEnforcement).toMatchObject({ caseRef: "SYN-1", victimIdentified: false, series: null, isDistributed: null });
  });

  it("decodes the signature from standard, unpadded or URL-safe base64", () => {
    const sig = randomBytes(64);
    for (const form of [sig.toString("base64"), sig.toString("base64").replace(/=+$/, ""), sig.toString("base64url")]) {
      expect(submissionFromJson(wire({ signature: form })).signature).toEqual(sig);
    }
  });

  it("leaves hash values alone (validateSubmission judges them)", () => {
    const upper = randomHex(16).toUpperCase();
    expect(submissionFromJson(wire({ hashes: [{ alg: "md5", value: upper }] })).hashes[0]?.value).toBe(upper);
  });

  it("names the path of every structural fault", () => {
    const w = wire();
    const cases: [Record<string, unknown> | unknown, ReasonCode, RegExp][] = [
      [{ ...w, submissionId: undefined }, "INVALID_FIELD", /^submissionId: required/],
      [{ ...w, agencyId: 7 }, "INVALID_FIELD", /^agencyId: must be a string, got number 7/],
      [{ ...w, op: "DELETE" }, "INVALID_FIELD", /^op: must be one of ASSERT, RETRACT/],
      [{ ...w, contentType: "audio" }, "INVALID_FIELD", /^contentType/],
      [{ ...w, hashes: "md5" }, "INVALID_FIELD", /^hashes: must be an array/],
      [
        {
          ...w,
          hashes: [
            { alg: "md5", value: randomHex(16) },
            { alg: "pdq", value: randomHex(32), quality: "90" },
          ],
        },
        "INVALID_FIELD",
        /^hashes\[1\]\.quality: must be an integer or null/,
      ],
      [{ ...w, hashes: [{ alg: "sha512", value: randomHex(64) }] }, "UNSUPPORTED_ALGORITHM", /^hashes\[0\]\.alg/],
      [{ ...w, hashes: [{ alg: "md5" }] }, "INVALID_FIELD", /^hashes\[0\]\.value: required/],
      [{ ...w, hashes: [{ alg: "md5", value: randomHex(16), colour: "red" }] }, "INVALID_FIELD", /^hashes\[0\]\.colour: unknown field/],
      [{ ...w, hashes: [null] }, "INVALID_FIELD", /^hashes\[0\]: must be an object, got null/],
      [{ ...w, grade: undefined }, "INVALID_FIELD", /^grade: required/],
      [{ ...w, grade: { uk: "D" } }, "INVALID_CATEGORY", /^grade\.uk/],
      [{ ...w, grade: { uk: "A", ics: "C9" } }, "INVALID_CATEGORY", /^grade\.ics/],
      [{ ...w, grade: { uk: "A", vics: { profile: "vics-2.0", code: "1" } } }, "INVALID_FIELD", /^grade\.vics\.code: must be an integer/],
      [{ ...w, gradingStatus: "final" }, "INVALID_FIELD", /^gradingStatus/],
      [{ ...w, lawEnforcement: { isDistributed: "true" } }, "INVALID_FIELD", /^lawEnforcement\.isDistributed: must be true, false or null/],
      [{ ...w, lawEnforcement: { caseRef: 12 } }, "INVALID_FIELD", /^lawEnforcement\.caseRef/],
      [{ ...w, lawEnforcment: { caseRef: "x" } }, "INVALID_FIELD", /^lawEnforcment: unknown field/],
      [{ ...w, submittedAt: "2025-01-01T00:00:00Z" }, "INVALID_FIELD", /^submittedAt: must be an integer/],
      [{ ...w, submittedAt: 1.5 }, "INVALID_FIELD", /^submittedAt/],
      [{ ...w, signature: "not base64!" }, "INVALID_FIELD", /^signature: must be base64/],
      [{ ...w, signature: undefined }, "INVALID_FIELD", /^signature: required/],
      [[w], "INVALID_FIELD", /^submission: must be an object, got an array/],
      [42, "INVALID_FIELD", /^submission: must be an object/],
    ];
    for (const [value, reason, detail] of cases) expectReason(() => submissionFromJson(value), reason, detail);
  });

  it("says MALFORMED_JSON for text that is not JSON", () => {
    expectReason(() => submissionFromJson('{"submissionId": '), "MALFORMED_JSON", /not JSON/);
    expectReason(() => submissionFromJson(Buffer.from("nope")), "MALFORMED_JSON");
  });
});

describe("parseSubmissionBatch", () => {
  const good = () => JSON.stringify(submissionToJson(signed()));

  it("takes one JSON object; original is the whole body", () => {
    const body = Buffer.from(`  ${good()}\n`);
    const items = parseSubmissionBatch(body);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ index: 0, ok: true });
    expect(items[0]?.original).toBe(body);
  });

  it("takes a JSON array; each original is the exact raw slice of its element", () => {
    const a = JSON.stringify(
      submissionToJson(signed({ lawEnforcement: { ...signed().lawEnforcement, series: 'tricky ], "quoted" {series} ✓' } })),
      null,
      2,
    );
    const bad = '{ "submissionId": "x", "hashes": "nope" }';
    const c = good();
    const text = `[\n  ${a} ,\n${bad},${c}\n]`;
    const body = Buffer.from(text);
    const items = parseSubmissionBatch(body);
    expect(items.map((i) => [i.index, i.ok])).toEqual([
      [0, true],
      [1, false],
      [2, true],
    ]);
    expect(items[0]?.original.toString()).toBe(a);
    expect(items[1]?.original.toString()).toBe(bad);
    expect(items[2]?.original.toString()).toBe(c);
    const failed = items[1];
    if (failed?.ok !== false) throw new Error("expected a failure");
    expect(failed.reason).toBe("INVALID_FIELD");
    expect(failed.detail).toMatch(/^(hashes|agencyId)/);
    expect(items[0]?.ok && items[0].submission.lawEnforcement.series).toBe('tricky ], "quoted" {series} ✓');
  });

  it("gives nothing for an empty array, and a failed item for a non-object element", () => {
    expect(parseSubmissionBatch(Buffer.from("[]"))).toEqual([]);
    const items = parseSubmissionBatch(Buffer.from(`[${good()}, 17, "x"]`));
    expect(items.map((i) => i.ok)).toEqual([true, false, false]);
    expect(items[1]).toMatchObject({ reason: "INVALID_FIELD" });
    expect(items[1]?.original.toString()).toBe("17");
    expect(items[2]?.original.toString()).toBe('"x"');
  });

  it("takes JSON Lines; a broken line fails alone with its own bytes", () => {
    const lines = [good(), '{"submissionId": "broken", ', good(), "", good()];
    const body = Buffer.from(`${lines.join("\r\n")}\n`);
    const items = parseSubmissionBatch(body);
    expect(items.map((i) => [i.index, i.ok])).toEqual([
      [0, true],
      [1, false],
      [2, true],
      [3, true],
    ]);
    expect(items[1]).toMatchObject({ reason: "MALFORMED_JSON" });
    expect(items[1]?.ok === false && items[1].detail).toMatch(/^line 2:/);
    expect(items[1]?.original.toString()).toBe('{"submissionId": "broken", ');
    expect(items[2]?.original.toString()).toBe(lines[2]);
  });

  it("makes a malformed body one MALFORMED_JSON item with the whole body", () => {
    for (const text of [`[${good()}, ${good().slice(0, 50)}`, '{\n  "submissionId": "x",\n', "not json at all", `${good()}}`]) {
      const body = Buffer.from(text);
      const items = parseSubmissionBatch(body);
      expect(items).toHaveLength(1);
      expect(items[0]).toMatchObject({ index: 0, ok: false, reason: "MALFORMED_JSON" });
      expect(items[0]?.original).toBe(body);
    }
  });

  it("refuses an empty body and a JSON value that is not an object or array", () => {
    expect(parseSubmissionBatch(Buffer.alloc(0))[0]).toMatchObject({ ok: false, reason: "MALFORMED_JSON", detail: "empty body" });
    expect(parseSubmissionBatch(Buffer.from(" \n "))[0]).toMatchObject({ ok: false, reason: "MALFORMED_JSON" });
    expect(parseSubmissionBatch(Buffer.from("42"))[0]).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
    expect(parseSubmissionBatch(Buffer.from("null"))[0]).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
  });

  it("skips a UTF-8 byte-order mark", () => {
    const text = `[${good()}]`;
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
    const items = parseSubmissionBatch(body);
    expect(items[0]?.ok).toBe(true);
    expect(items[0]?.original.toString()).toBe(text.slice(1, -1));
  });
});
