/**
 * Hostile input for parseSubmissionBatch: it must never throw, and every failed item
 * must carry a reason of REASON_CODES (never INTERNAL) and its original bytes. Random bytes,
 * every truncation / bit flip / boundary byte of valid bodies, deep nesting, BOMs, invalid UTF-8,
 * NUL bytes, CRLF and CR, JSON Lines mixed with garbage, prototype keys; the big cases (8 MiB of
 * items, 4 MiB padding runs) run in a child process with a small heap.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseSubmissionBatch, submissionToJson } from "../../services/shared/wire/submission-json.ts";
import type { SubmissionItem } from "../../services/shared/wire/submission-json.ts";
import type { Submission } from "../../services/shared/wire/records.ts";
import { unsignedSubmission } from "../support/fixtures.ts";
import {
  bitFlips,
  byteSets,
  expectRejection,
  fail,
  havoc,
  int,
  MB,
  pick,
  prng,
  randomBuffer,
  randomFrom,
  runIsolated,
  show,
  truncations,
  withinBudget,
} from "./support.ts";
import type { IsolatedResult } from "./support.ts";

/** What a bad item of a body may be refused for (structural decoding only: no clock, no hash rules). */
const JSON_REASONS = ["MALFORMED_JSON", "INVALID_FIELD", "UNSUPPORTED_ALGORITHM", "INVALID_CATEGORY", "BODY_TOO_LARGE"];

function signed(): Submission {
  return { ...unsignedSubmission(), signature: randomBytes(64) };
}

function wireText(sub: Submission = signed()): string {
  return JSON.stringify(submissionToJson(sub));
}

/** parseSubmissionBatch, checked: no throw, indexes 0.., reasoned rejections, originals taken from the body. */
function batch(body: Buffer): SubmissionItem[] {
  let items: SubmissionItem[];
  try {
    items = parseSubmissionBatch(body);
  } catch (err) {
    return fail(`parseSubmissionBatch threw ${(err as Error).name}: ${(err as Error).message}`, body);
  }
  items.forEach((item, i) => {
    if (item.index !== i) fail(`index ${item.index} at position ${i}`, body);
    if (!item.ok) expectRejection(item, body, JSON_REASONS);
    if (!Buffer.isBuffer(item.original)) fail("original is not a Buffer", body);
    // Originals are the item's own bytes: a slice of the body (the JSON.stringify fallback never needed).
    if (item.original.length > 0 && body.length < 100_000 && !body.includes(item.original)) fail("original not from the body", body);
  });
  return items;
}

/** For a body that is a JSON array: each item's original parses to that element. */
function expectExactOriginals(body: Buffer, items: SubmissionItem[]): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8").replace(/^\uFEFF/, ""));
  } catch {
    return;
  }
  if (!Array.isArray(parsed)) return;
  if (items.length !== parsed.length) fail(`${items.length} items for ${parsed.length} elements`, body);
  items.forEach((item, i) => {
    if (JSON.stringify(JSON.parse(item.original.toString("utf8"))) !== JSON.stringify(parsed[i]))
      fail(`original of item ${i} is not its element`, body);
  });
}

describe("parseSubmissionBatch: random and mutated bodies", () => {
  it("4000 random bodies (raw bytes and JSON-ish alphabets) never throw and give reasoned items", async () => {
    const rng = prng();
    const alphabets = ['{}[]":,0123456789eE.-+ \n\r\tabcflnrstu\\', '{"submissionId":[]}\n\r ,', "\u00ef\u00bb\u00bf{}\n"];
    const reasons = new Set<string>();
    await withinBudget(10_000, () => {
      for (let i = 0; i < 4000; i++) {
        const len = int(rng, 400);
        const body = i % 3 === 0 ? randomBuffer(rng, len) : randomFrom(rng, pick(rng, alphabets), len);
        for (const item of batch(body)) if (!item.ok) reasons.add(item.reason);
      }
    });
    expect([...reasons]).toContain("MALFORMED_JSON");
  });

  it("every truncation, bit flip and boundary byte of a single object, an array and JSON Lines", async () => {
    const rng = prng();
    const bodies = [
      Buffer.from(wireText()),
      Buffer.from(`[${wireText()}, ${wireText()} ,\n${wireText()}]`),
      Buffer.from(`${wireText()}\r\n${wireText()}\n\n${wireText()}\n`),
      Buffer.from(`\uFEFF${JSON.stringify(submissionToJson(signed()), null, 2)}`),
    ];
    let cases = 0;
    await withinBudget(20_000, () => {
      for (const body of bodies) {
        for (const t of truncations(body)) {
          expectExactOriginals(t, batch(t));
          cases++;
        }
        for (const f of bitFlips(body, rng)) {
          expectExactOriginals(f, batch(f));
          cases++;
        }
        for (let round = 0; round < 2; round++) {
          for (const b of byteSets(body, [0x00, 0x0a, 0x0d, 0x22, 0x2c, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x80, 0xc3, 0xff], rng)) {
            batch(b);
            cases++;
          }
        }
        for (let i = 0; i < 300; i++) {
          const h = havoc(rng, body);
          expectExactOriginals(h, batch(h));
          cases++;
        }
      }
    });
    expect(cases).toBeGreaterThan(15_000);
  });

  it("a bad element of an array never hides the good ones, and keeps its exact bytes", () => {
    const good = [wireText(), wireText()];
    const junk = [
      "17",
      '"x"',
      "null",
      "[]",
      "{}",
      '{"__proto__":{"polluted":1}}',
      "[".repeat(1000) + "]".repeat(1000),
      '"\\u0000"',
      "1e400",
    ];
    const body = Buffer.from(`[${good[0]},${junk.join(" , ")},\n${good[1]}]`);
    const items = batch(body);
    expect(items.map((i) => i.ok)).toEqual([true, ...junk.map(() => false), true]);
    expectExactOriginals(body, items);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });
});

describe("parseSubmissionBatch: deep nesting", () => {
  const deep = (n: number, open = "[", close = "]") => open.repeat(n) + close.repeat(n);
  const cases: [string, string][] = [
    ["100k nested arrays", deep(100_000)],
    ["100k nested objects", `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`],
    ["100k unclosed arrays", "[".repeat(100_000)],
    ["100k unclosed objects", '{"a":'.repeat(100_000)],
    ["an array element nested 100k deep", `[${wireText()},${deep(100_000)}]`],
    ["hashes nested 100k deep", wireText().replace('"hashes":[', `"hashes":[${deep(100_000)},`)],
    ["grade nested 100k deep", wireText().replace(/"grade":\{[^}]*\}/, `"grade":${'{"uk":'.repeat(100_000)}"A"${"}".repeat(100_000)}`)],
    ["signature nested 100k deep", wireText().replace(/"signature":"[^"]*"/, `"signature":${deep(100_000)}`)],
    ["a JSON Lines line nested 100k deep", `${wireText()}\n{"a":${deep(100_000)}}\n${wireText()}`],
    ["a JSON Lines line unclosed 100k deep", `${wireText()}\n{"a":${"[".repeat(100_000)}\n${wireText()}`],
    ["300k nested arrays", deep(300_000)],
  ];
  for (const [label, text] of cases) {
    it(`${label}: reasoned items, no RangeError`, async () => {
      const body = Buffer.from(text);
      const items = await withinBudget(5_000, () => batch(body));
      expect(items.length).toBeGreaterThan(0);
      expect(items.some((i) => !i.ok)).toBe(true);
    });
  }

  it("JSON Lines with a deep line still yields its good lines", () => {
    const items = batch(Buffer.from(`${wireText()}\n{"a":${"[".repeat(50_000)}\n${wireText()}\n`));
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "MALFORMED_JSON", "ok"]);
  });
});

describe("parseSubmissionBatch: encodings, BOMs, NUL bytes, line endings", () => {
  it("a UTF-8 BOM is dropped once; a second BOM or a UTF-16 body is MALFORMED_JSON", () => {
    const text = wireText();
    expect(batch(Buffer.from(`\uFEFF${text}`)).map((i) => i.ok)).toEqual([true]);
    expect(batch(Buffer.from(`\uFEFF\uFEFF${text}`))[0]).toMatchObject({ ok: false, reason: "MALFORMED_JSON" });
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]);
    expect(batch(utf16)).toMatchObject([{ ok: false, reason: "MALFORMED_JSON", original: utf16 }]);
    const utf16be = Buffer.from(Buffer.from(`\uFEFF${text}`, "utf16le").swap16());
    expect(batch(utf16be)).toMatchObject([{ ok: false, reason: "MALFORMED_JSON" }]);
    // A BOM before JSON Lines, and one in the middle of a body.
    expect(batch(Buffer.from(`\uFEFF${text}\n${wireText()}\n`)).map((i) => i.ok)).toEqual([true, true]);
    expect(batch(Buffer.from(`${text}\n\uFEFF${wireText()}\n`)).map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "MALFORMED_JSON"]);
  });

  it("invalid UTF-8 inside strings, keys and between tokens", () => {
    const rng = prng();
    const bad = [[0xff], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80, 0x80, 0x80]];
    const text = wireText();
    for (let i = 0; i < 300; i++) {
      const seq = Buffer.from(pick(rng, bad));
      const at = int(rng, text.length);
      const body = Buffer.concat([Buffer.from(text.slice(0, at)), seq, Buffer.from(text.slice(at))]);
      batch(body);
      batch(Buffer.concat([Buffer.from("["), body, Buffer.from(`,${text}]`)]));
    }
    // In a string value the bytes decode to U+FFFD: a structurally valid item, still with its exact bytes.
    const inId = Buffer.concat([Buffer.from('{"submissionId":"a'), Buffer.from([0xff, 0xfe]), Buffer.from(text.slice(text.indexOf('",')))]);
    expect(inId.includes(Buffer.from([0xff, 0xfe]))).toBe(true);
    const [item] = batch(Buffer.concat([Buffer.from("["), inId, Buffer.from("]")]));
    expect(item?.original).toEqual(inId);
  });

  it("NUL bytes: raw in a string is MALFORMED_JSON; escaped is structurally fine; between items of JSON Lines", () => {
    const text = wireText();
    const raw = Buffer.from(text.replace('"ASSERT"', '"ASS\u0000ERT"'));
    expect(batch(raw)[0]).toMatchObject({ ok: false, reason: "MALFORMED_JSON" });
    expect(batch(Buffer.from(text.replace('"ASSERT"', '"ASS\\u0000ERT"')))[0]).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
    expect(batch(Buffer.alloc(1000)).map((i) => (i.ok ? "ok" : i.reason))).toEqual(["MALFORMED_JSON"]);
    const lines = batch(Buffer.from(`${text}\n\u0000\u0000\n${wireText()}\n`));
    expect(lines.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "MALFORMED_JSON", "ok"]);
    expect(lines[1]?.original).toEqual(Buffer.from([0, 0]));
  });

  it("CRLF JSON Lines split with originals free of \\r; CR-only line ends are one MALFORMED_JSON item (documented: lines end in \\n)", () => {
    const subs = [wireText(), wireText(), wireText()];
    const crlf = batch(Buffer.from(`${subs.join("\r\n")}\r\n`));
    expect(crlf.map((i) => i.ok)).toEqual([true, true, true]);
    for (const [i, item] of crlf.entries()) expect(item.original.toString()).toBe(subs[i]);
    const cr = Buffer.from(subs.join("\r"));
    expect(batch(cr)).toMatchObject([{ ok: false, reason: "MALFORMED_JSON", original: cr }]);
    // Mixed endings and whitespace-only lines.
    const mixed = batch(Buffer.from(`${subs[0]}\r\n \t \r\n${subs[1]}\n\r\n${subs[2]}`));
    expect(mixed.map((i) => i.ok)).toEqual([true, true, true]);
  });

  it("JSON Lines mixed with garbage: every good line is an ok item, every bad line a failed one with its exact bytes", () => {
    const rng = prng();
    const garbage = (): string =>
      pick(rng, [
        () => "{",
        () => "}",
        () => "[1,2,3]",
        () => "42",
        () => '"just a string"',
        () => "null",
        () => '{"submissionId":',
        () => wireText().slice(0, 1 + int(rng, 200)),
        () => `{"a":${"[".repeat(int(rng, 5000))}`,
        () => randomFrom(rng, '{}[]":,abc \t', 1 + int(rng, 60)).toString("latin1"),
        () => '{"__proto__":{"polluted":true},"submissionId":"x"}',
        () => `{${'"k":1,'.repeat(int(rng, 50))}"z":2}`,
      ])();
    for (let round = 0; round < 100; round++) {
      const lines: { text: string; good: boolean }[] = [];
      for (let i = 0; i < 2 + int(rng, 12); i++)
        lines.push(rng() < 0.5 ? { text: wireText(), good: true } : { text: garbage(), good: false });
      if (!lines.some((l) => l.good)) lines.unshift({ text: wireText(), good: true });
      if (lines[0] && !lines[0].text.startsWith("{")) lines.unshift({ text: wireText(), good: true });
      const body = Buffer.from(lines.map((l) => l.text + (rng() < 0.3 ? "\r\n\n" : "\n")).join(""));
      const items = batch(body);
      expect(
        items.map((i) => i.ok),
        show(body),
      ).toEqual(lines.map((l) => l.good));
      for (const [i, item] of items.entries()) expect(item.original.toString("utf8")).toBe(lines[i]?.text);
    }
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });
});

describe("parseSubmissionBatch: wrong types and prototype keys", () => {
  it("__proto__, constructor and prototype keys anywhere are unknown fields; nothing is polluted", () => {
    const base = JSON.parse(wireText()) as Record<string, unknown>;
    const variants = [
      `{"__proto__":{"polluted":1},${wireText().slice(1)}`,
      `{"constructor":{"prototype":{"polluted":1}},${wireText().slice(1)}`,
      JSON.stringify({
        ...base,
        hashes: [JSON.parse('{"__proto__":{"polluted":1},"alg":"md5","value":"0123456789abcdef0123456789abcdef"}')],
      }),
      JSON.stringify({ ...base, grade: JSON.parse('{"uk":"A","__proto__":{"ics":"A1"}}') }),
      JSON.stringify({ ...base, lawEnforcement: JSON.parse('{"__proto__":{"caseRef":"x"}}') }),
      JSON.stringify({ ...base, grade: { uk: "A", vics: JSON.parse('{"profile":"p","code":1,"__proto__":null}') } }),
    ];
    for (const text of variants) {
      const [item] = batch(Buffer.from(text));
      expect(item, text.slice(0, 120)).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
      expect((item as { detail: string }).detail).toMatch(/unknown field/);
    }
    // Enum-like values that are Object.prototype names.
    for (const [field, value] of [
      ["op", "constructor"],
      ["contentType", "__proto__"],
      ["gradingStatus", "toString"],
    ] as const) {
      expect(batch(Buffer.from(JSON.stringify({ ...base, [field]: value })))[0]).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
    }
    expect(batch(Buffer.from(JSON.stringify({ ...base, grade: { uk: "hasOwnProperty" } })))[0]).toMatchObject({
      ok: false,
      reason: "INVALID_CATEGORY",
    });
    expect(batch(Buffer.from(JSON.stringify({ ...base, hashes: [{ alg: "constructor", value: "x" }] })))[0]).toMatchObject({
      ok: false,
      reason: "UNSUPPORTED_ALGORITHM",
    });
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("numbers where strings are expected, strings where numbers are, and out-of-range numbers", () => {
    const base = JSON.parse(wireText()) as Record<string, unknown>;
    const patches: Record<string, unknown>[] = [
      { submissionId: 1 },
      // biome-ignore lint/correctness/noPrecisionLoss: a literal that overflows to Infinity is the hostile input
      { agencyId: 1e400 },
      { keyId: [] },
      { op: {} },
      { contentType: true },
      { hashes: {} },
      { hashes: "md5" },
      { hashes: [1, 2] },
      { hashes: [{ alg: "md5", value: 12345 }] },
      { hashes: [{ alg: "pdq", value: "0".repeat(64), quality: "90" }] },
      { hashes: [{ alg: "pdq", value: "0".repeat(64), quality: 1.5 }] },
      { grade: "A" },
      { grade: { uk: 1 } },
      { grade: { uk: "A", vics: { profile: "p", code: 2 ** 53 + 2 } } },
      { grade: { uk: "A", vics: { profile: 7, code: 1 } } },
      { lawEnforcement: "x" },
      { lawEnforcement: { victimIdentified: "true" } },
      { submittedAt: "1767225600000" },
      { submittedAt: 1.5 },
      { submittedAt: 2 ** 53 },
      { signature: 64 },
      { signature: "not base64!" },
      { signature: "A" },
    ];
    for (const patch of patches) {
      const text = JSON.stringify({ ...base, ...patch });
      const [item] = batch(Buffer.from(text));
      expect(item?.ok, text.slice(0, 200)).toBe(false);
    }
    // Raw JSON numbers JSON.stringify cannot write.
    for (const raw of ["1e400", "-1e400", "-0", "1E+308", "0.0000000000000000000000001"]) {
      const [item] = batch(Buffer.from(wireText().replace(/"submittedAt":\d+/, `"submittedAt":${raw}`)));
      expect(item, raw).toMatchObject({ ok: raw === "-0" });
    }
  });

  it("huge strings and many hashes stay bounded by the body and give reasoned items", async () => {
    const base = JSON.parse(wireText()) as Record<string, unknown>;
    const big = "x".repeat(4 * MB);
    await withinBudget(5_000, () => {
      // A huge unknown key and huge values: reasoned, the detail names the field.
      const [unknownKey] = batch(Buffer.from(JSON.stringify({ ...base, [big]: 1 })));
      expect(unknownKey).toMatchObject({ ok: false, reason: "INVALID_FIELD" });
      const [hugeAlg] = batch(Buffer.from(JSON.stringify({ ...base, hashes: [{ alg: big, value: "0" }] })));
      expect(hugeAlg).toMatchObject({ ok: false, reason: "UNSUPPORTED_ALGORITHM" });
      expect((hugeAlg as { detail: string }).detail.length).toBeLessThan(500);
      const [hugeSig] = batch(Buffer.from(JSON.stringify({ ...base, signature: `${big}!` })));
      expect(hugeSig).toMatchObject({ ok: false, reason: "INVALID_FIELD", detail: "signature: must be base64" });
      // 20,000 hashes: structurally fine here (validateSubmission refuses more than 4096).
      const hashes = Array.from({ length: 20_000 }, () => ({ alg: "md5", value: "0123456789abcdef0123456789abcdef" }));
      expect(batch(Buffer.from(JSON.stringify({ ...base, hashes })))[0]?.ok).toBe(true);
    });
  });
});

describe("parseSubmissionBatch: big bodies, in a child process with a 256 MB heap", () => {
  let runs: Record<string, Promise<IsolatedResult>> | undefined;
  const isolated = (name: string): Promise<IsolatedResult> => {
    runs ??= runIsolated(["jsonZeros", "jsonLinesFlood", "paddingRuns"], { maxOldMb: 256, timeoutMs: 50_000 });
    return runs[name] as Promise<IsolatedResult>;
  };

  it('8 MiB of "[0,0,0,…]" (4 million items) is cut at 50,000 items plus one BODY_TOO_LARGE item, quickly', {
    timeout: 60_000,
  }, async () => {
    const run = await isolated("jsonZeros");
    expect(run.result).toEqual({ count: 50_001, last: { reason: "BODY_TOO_LARGE", index: 50_000, originalBytes: 8 * MB - 100_000 } });
    expect(run.ms).toBeLessThan(10_000);
    expect(run.peakHeapBytes).toBeLessThan(200 * MB);
  });

  it("8 MiB of JSON Lines (2.7 million lines) is cut the same way", { timeout: 60_000 }, async () => {
    const run = await isolated("jsonLinesFlood");
    expect(run.result).toEqual({ count: 50_001, last: { reason: "BODY_TOO_LARGE", index: 50_000 } });
    expect(run.ms).toBeLessThan(10_000);
    expect(run.peakHeapBytes).toBeLessThan(200 * MB);
  });

  it('a 4 MiB run of "=" that does not end the signature (or a PhotoDNA value) is refused in linear time', {
    timeout: 60_000,
  }, async () => {
    const run = await isolated("paddingRuns");
    expect(run.result).toEqual({ json: "INVALID_FIELD", photoDna: "INVALID_HASH" });
    expect(run.ms).toBeLessThan(5_000);
  });
});
