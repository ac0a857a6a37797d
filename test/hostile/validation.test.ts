/**
 * Hostile values for validateSubmission, validateDraft and normaliseHash: wrong types,
 * huge strings, prototype names, NaN / Infinity / -0 / unsafe integers, dates past Date's range,
 * nested objects, every field in turn. They may only return, or throw ValidationError with a
 * reason of REASON_CODES (never a TypeError or RangeError), in linear time, polluting nothing.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { normaliseHash, validateDraft, validateSubmission } from "../../services/shared/wire/submission-validation.ts";
import type { SubmissionDraft } from "../../services/shared/wire/submission-validation.ts";
import { REASON_CODES, ValidationError } from "../../services/shared/errors.ts";
import { HashAlgValues } from "../../services/shared/wire/records.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import { randomHex, unsignedSubmission } from "../support/fixtures.ts";
import { int, MB, pick, prng, randomFrom, withinBudget } from "./support.ts";

const NOW = Date.UTC(2026, 5, 1);

function valid(): Submission {
  return {
    ...unsignedSubmission({ submittedAt: NOW - 1000 }),
    hashes: [
      { alg: "md5", value: randomHex(16), quality: null },
      { alg: "pdq", value: randomHex(32), quality: 90 },
      { alg: "photodna", value: randomBytes(144).toString("base64"), quality: null },
    ],
    signature: randomBytes(64),
  };
}

function deepObject(levels: number): unknown {
  let v: unknown = "bottom";
  for (let i = 0; i < levels; i++) v = { a: v, b: [v] };
  return v;
}

/** Garbage to put in any field. */
const GARBAGE: readonly [string, unknown][] = [
  ["undefined", undefined],
  ["null", null],
  ["NaN", Number.NaN],
  ["Infinity", Number.POSITIVE_INFINITY],
  ["-Infinity", Number.NEGATIVE_INFINITY],
  ["-0", -0],
  ["0", 0],
  ["1.5", 1.5],
  ["2^53", 2 ** 53],
  ["-2^53", -(2 ** 53)],
  ["MAX_SAFE", Number.MAX_SAFE_INTEGER],
  ["past Date range", 8.64e15 + 1],
  ["1e308", 1e308],
  ["true", true],
  ["empty string", ""],
  ["blanks", " \t\n "],
  ["1 MiB string", "x".repeat(MB)],
  ["4 MiB of =", "=".repeat(4 * MB)],
  ["NUL", "\u0000"],
  ["lone surrogate", "\ud800"],
  ["__proto__", "__proto__"],
  ["constructor", "constructor"],
  ["toString", "toString"],
  ["object", {}],
  ["null-prototype object", Object.create(null) as unknown],
  ["JSON __proto__ object", JSON.parse('{"__proto__":{"polluted":true},"uk":"A","alg":"md5"}') as unknown],
  ["array", []],
  ["array of garbage", [null, {}, "x"]],
  ["nested 5000 levels", deepObject(5000)],
  ["Date", new Date(0)],
  ["Buffer(64)", Buffer.alloc(64)],
  ["Uint8Array(0)", new Uint8Array(0)],
  ["BigInt", 10n],
  ["Symbol", Symbol("s")],
  ["function", () => 1],
];

function outcome(fn: () => unknown, label: string): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    if (!(err instanceof ValidationError)) {
      throw new Error(`${label}: threw ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
    }
    if (!(REASON_CODES as readonly string[]).includes(err.reason) || err.reason === "INTERNAL")
      throw new Error(`${label}: reason ${err.reason}`);
    if (err.detail.length > 2000) throw new Error(`${label}: a detail of ${err.detail.length} characters (echoes the input?)`);
    return err.reason;
  }
}

/** Paths of every field of a submission, with a setter on a deep copy. */
const PATHS: readonly string[] = [
  "submissionId",
  "agencyId",
  "keyId",
  "op",
  "contentType",
  "hashes",
  "hashes.0",
  "hashes.0.alg",
  "hashes.0.value",
  "hashes.0.quality",
  "hashes.1.quality",
  "hashes.2.value",
  "grade",
  "grade.uk",
  "grade.ics",
  "grade.vics",
  "grade.vics.profile",
  "grade.vics.code",
  "gradingStatus",
  "lawEnforcement",
  "lawEnforcement.caseRef",
  "lawEnforcement.victimIdentified",
  "lawEnforcement.graderRef",
  "submittedAt",
  "signature",
];

function withField(sub: Submission, path: string, value: unknown): Submission {
  const copy = structuredClone({ ...sub, signature: new Uint8Array(sub.signature) }) as unknown as Record<string, unknown>;
  const keys = path.split(".");
  let target = copy as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) target = target[k] as Record<string, unknown>;
  target[keys[keys.length - 1] as string] = value;
  return copy as unknown as Submission;
}

describe("validateSubmission with garbage in every field", () => {
  it(`${PATHS.length} fields x ${GARBAGE.length} hostile values: accepted or a reasoned ValidationError`, async () => {
    const base = valid();
    expect(outcome(() => validateSubmission(base, NOW), "valid")).toBe("ok");
    const reasons = new Set<string>();
    const accepted: string[] = [];
    await withinBudget(10_000, () => {
      for (const path of PATHS) {
        for (const [label, value] of GARBAGE) {
          const sub = withField(base, path, value);
          const r = outcome(() => validateSubmission(sub, NOW), `${path} = ${label}`);
          reasons.add(r);
          if (r === "ok") accepted.push(`${path} = ${label}`);
        }
      }
    });
    expect([...reasons].sort()).toEqual(["INVALID_CATEGORY", "INVALID_FIELD", "INVALID_HASH", "NO_HASHES", "UNSUPPORTED_ALGORITHM", "ok"]);
    // What is accepted is a legitimate value of its field: a prototype name is just text; null for
    // an optional field; 0 for a quality or code; a 64-byte Buffer for the signature. Never NUL,
    // an unpaired surrogate, a number for text, a non-integer, an object or a huge string.
    const legitimate = new Set([
      "__proto__",
      "constructor",
      "toString",
      "empty string",
      "blanks",
      "null",
      "undefined",
      "-0",
      "0",
      "true",
      "Buffer(64)",
    ]);
    expect(accepted.filter((a) => !legitimate.has(a.split(" = ")[1] as string))).toEqual([]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("free text PostgreSQL cannot store (U+0000, unpaired surrogates) is INVALID_FIELD; paired surrogates are fine", () => {
    // PostgreSQL refuses these in jsonb (dedup stores lawEnforcement as jsonb): accepted here, they failed
    // dedup's INSERT on every redelivery.
    for (const path of [
      "agencyId",
      "keyId",
      "lawEnforcement.caseRef",
      "lawEnforcement.series",
      "lawEnforcement.graderRef",
      "grade.vics.profile",
    ]) {
      for (const bad of ["a\u0000b", "\u0000", "x\ud800", "\udc00x", "\udbff\ud800"]) {
        const r = outcome(() => validateSubmission(withField(valid(), path, bad), NOW), `${path} = ${JSON.stringify(bad)}`);
        expect(r, `${path} = ${JSON.stringify(bad)}`).toBe(path === "grade.vics.profile" ? "INVALID_CATEGORY" : "INVALID_FIELD");
      }
      expect(outcome(() => validateSubmission(withField(valid(), path, "SYN \u{1F600} é \t"), NOW), path)).toBe("ok");
    }
  });

  it("the submission itself replaced by garbage", () => {
    for (const [label, value] of GARBAGE) outcome(() => validateSubmission(value as Submission, NOW), label);
  });

  it("submittedAt past Date's range (8.64e15 ms) is INVALID_FIELD, not a RangeError from toISOString", () => {
    for (const at of [8.64e15 + 1, Number.MAX_SAFE_INTEGER, 2 ** 53 - 2]) {
      const r = outcome(() => validateSubmission(withField(valid(), "submittedAt", at), NOW), String(at));
      expect(r).toBe("INVALID_FIELD");
    }
    for (const at of [-8.64e15 - 1, Number.MIN_SAFE_INTEGER, -1]) {
      expect(outcome(() => validateSubmission(withField(valid(), "submittedAt", at), NOW), String(at))).toBe("INVALID_FIELD");
    }
  });

  it("4096 hashes pass, 4097 and a million are refused at once by count", async () => {
    const hashes = (n: number): Hash[] =>
      Array.from({ length: n }, (_, i) => ({ alg: "pdq", value: i.toString(16).padStart(64, "0"), quality: null }));
    expect(outcome(() => validateSubmission(withField(valid(), "hashes", hashes(4096)), NOW), "4096")).toBe("ok");
    expect(outcome(() => validateSubmission(withField(valid(), "hashes", hashes(4097)), NOW), "4097")).toBe("INVALID_FIELD");
    const million = new Array(1_000_000).fill({ alg: "md5", value: "x" }) as Hash[];
    await withinBudget(1_000, () =>
      expect(outcome(() => validateSubmission({ ...valid(), hashes: million }, NOW), "1e6")).toBe("INVALID_FIELD"),
    );
  });
});

describe("validateDraft with garbage in every field", () => {
  it("accepted (normalised) or a reasoned ValidationError", () => {
    const sub = valid();
    const draft: SubmissionDraft = {
      submissionId: sub.submissionId,
      op: sub.op,
      contentType: sub.contentType,
      hashes: sub.hashes,
      grade: sub.grade,
      gradingStatus: sub.gradingStatus,
      lawEnforcement: sub.lawEnforcement,
    };
    for (const path of PATHS.filter((p) => !["agencyId", "keyId", "submittedAt", "signature"].includes(p))) {
      for (const [label, value] of GARBAGE) {
        outcome(
          () =>
            validateDraft(
              withField({ ...draft, signature: Buffer.alloc(0) } as unknown as Submission, path, value) as unknown as SubmissionDraft,
            ),
          `${path} = ${label}`,
        );
      }
    }
  });
});

describe("normaliseHash with garbage", () => {
  const CANONICAL: Record<string, RegExp> = {
    md5: /^[0-9a-f]{32}$/,
    sha1: /^[0-9a-f]{40}$/,
    sha256: /^[0-9a-f]{64}$/,
    pdq: /^[0-9a-f]{64}$/,
    photodna: /^[A-Za-z0-9+/]{192}$/,
  };

  function check(alg: unknown, value: unknown, quality: unknown, label: string): string {
    let out: Hash | undefined;
    const r = outcome(() => {
      out = normaliseHash(alg as string, value as string, quality as number);
    }, label);
    if (r === "ok") {
      const h = out as Hash;
      if (!(HashAlgValues as readonly string[]).includes(h.alg) || !CANONICAL[h.alg]?.test(h.value))
        throw new Error(`${label}: not canonical: ${JSON.stringify(h)}`);
      if (h.quality !== null && (h.alg !== "pdq" || !Number.isInteger(h.quality) || h.quality < 0 || h.quality > 100))
        throw new Error(`${label}: bad quality ${h.quality}`);
      // Idempotent.
      expect(normaliseHash(h.alg, h.value, h.quality)).toEqual(h);
    } else if (!["UNSUPPORTED_ALGORITHM", "INVALID_HASH"].includes(r)) {
      throw new Error(`${label}: reason ${r}`);
    }
    return r;
  }

  it("every hostile alg, value and quality", async () => {
    const algs: [string, unknown][] = [
      ...GARBAGE,
      ...HashAlgValues.map((a): [string, unknown] => [a, a]),
      ["MD5 ", " MD5 "],
      ["PhotoDNA", "PhotoDNA"],
    ];
    const values: [string, unknown][] = [
      ...GARBAGE,
      ["md5 hex", randomHex(16).toUpperCase()],
      ["sha256 hex", ` ${randomHex(32)} `],
      ["photodna base64", randomBytes(144).toString("base64")],
      ["photodna url-safe padded", `${randomBytes(144).toString("base64url")}==`],
      ["photodna hex", randomHex(144)],
    ];
    const qualities: [string, unknown][] = [
      ["undefined", undefined],
      ["null", null],
      ["50", 50],
      ["-0", -0],
      ["101", 101],
      ["NaN", Number.NaN],
      ["'90'", "90"],
      ["2^53", 2 ** 53],
      ["1.5", 1.5],
    ];
    let accepted = 0;
    await withinBudget(10_000, () => {
      for (const [al, alg] of algs) {
        for (const [vl, value] of values) {
          for (const [ql, quality] of qualities) if (check(alg, value, quality, `${al} / ${vl} / ${ql}`) === "ok") accepted++;
        }
      }
    });
    expect(accepted).toBeGreaterThan(0);
  });

  it("5000 random near-miss values (lengths around each form, mixed alphabets) are canonical when accepted", () => {
    const rng = prng();
    const alphabets = ["0123456789abcdef", "0123456789ABCDEFabcdefg", "A-Za-z0-9+/=_-", "0123456789abcdef \t\n=", "xyz\u00e9\u0000"];
    const lengths = [31, 32, 33, 39, 40, 41, 63, 64, 65, 191, 192, 193, 194, 287, 288, 289];
    for (let i = 0; i < 5000; i++) {
      let alphabet = pick(rng, alphabets);
      if (alphabet === "A-Za-z0-9+/=_-") alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-";
      const value = randomFrom(rng, alphabet, pick(rng, lengths) + int(rng, 3) - 1).toString("latin1");
      const alg = pick(rng, [...HashAlgValues, "MD5", " pdq", "sha-1", "photo dna"]);
      check(alg, value, rng() < 0.2 ? int(rng, 120) : null, `${alg} ${JSON.stringify(value)}`);
    }
  });

  it("long values are refused in linear time (a padding run that does not end the value took seconds)", async () => {
    await withinBudget(2_000, () => {
      expect(check("photodna", `${"=".repeat(200_000)}A`, null, "= run")).toBe("INVALID_HASH");
      expect(check("photodna", `A${"=".repeat(200_000)}`, null, "trailing = run")).toBe("INVALID_HASH");
      expect(check("md5", `${"a".repeat(4 * MB)}!`, null, "long hex")).toBe("INVALID_HASH");
      expect(check("photodna", "A".repeat(4 * MB), null, "long base64")).toBe("INVALID_HASH");
      expect(check(" ".repeat(MB), "x", null, "long alg")).toBe("UNSUPPORTED_ALGORITHM");
    });
  });
});
