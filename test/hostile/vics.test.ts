/**
 * Hostile input for readVicsDrafts. Reading never throws once started (only a bad
 * submissionIdPrefix throws, at once, and an error of the source itself propagates); every
 * failed item has a reason of REASON_CODES (never INTERNAL); a file fault is one MALFORMED_VICS
 * item and the end. Random bytes, every truncation / bit flip / boundary byte of valid exports,
 * random chunking, deep nesting, wrong shapes and types, prototype keys, BOMs, UTF-16, invalid UTF-8,
 * NUL bytes, CR/CRLF; the big cases (50 MiB strings, numbers and keys, one 2 MB chunk of items,
 * 20 MiB of "[") run in a child process with a small heap.
 */
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readVicsDrafts } from "../../services/force-cli/formats/vics.ts";
import type { DraftItem } from "../../services/force-cli/formats/common.ts";
import { ValidationError } from "../../services/shared/errors.ts";
import { randomHex } from "../support/fixtures.ts";
import {
  bitFlips,
  byteSets,
  collect,
  expectDraftItems,
  fail,
  havoc,
  HeapWatch,
  int,
  MB,
  prng,
  randomBuffer,
  randomChunks,
  randomFrom,
  runIsolated,
  sourceOf,
  truncations,
  withinBudget,
} from "./support.ts";
import type { IsolatedResult, Rng } from "./support.ts";

const V1 = '"odata.metadata":"http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media"';
const V2_CASES = '"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases"';
const VICS_REASONS = ["MALFORMED_VICS", "INVALID_FIELD", "INVALID_HASH", "INVALID_CATEGORY", "NO_HASHES"];
const PREFIX = "force-a:hostile:";

function media(id: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    MediaID: id,
    Category: id % 5,
    MD5: randomHex(16).toUpperCase(),
    SHA1: randomHex(20),
    PDQ: randomHex(32),
    PDQQuality: 80,
    IsDistributed: "true",
    Series: "SYN-Ü-系列",
    MediaFiles: [{ FileName: `synthetic-${id}.jpg`, FilePath: 'C:\\synthetic\\"quoted"' }],
    ...extra,
  };
}

const mediaFile = (items: unknown[]): string => `{${V1},"value":${JSON.stringify(items)}}`;
const casesFile = (cases: unknown[]): string => `{${V2_CASES},"value":${JSON.stringify(cases)}}`;

/** readVicsDrafts over `parts`, checked: never throws, indexes 0.., reasoned rejections. */
async function read(input: Buffer | string, parts: Iterable<Buffer | string> = [input], maxItemChars?: number): Promise<DraftItem[]> {
  const opts = maxItemChars === undefined ? { submissionIdPrefix: PREFIX } : { submissionIdPrefix: PREFIX, maxItemChars };
  let items: DraftItem[];
  try {
    items = await collect(readVicsDrafts(sourceOf(parts), opts));
  } catch (err) {
    return fail(`readVicsDrafts threw ${(err as Error).name}: ${(err as Error).message}`, input);
  }
  expectDraftItems(items, input, VICS_REASONS);
  return items;
}

const summary = (items: DraftItem[]): string[] => items.map((i) => (i.ok ? "ok" : i.reason));

function chunksOf(rng: Rng, buf: Buffer): Buffer[] {
  return rng() < 0.5 ? [buf] : randomChunks(rng, buf, 1 + int(rng, 40));
}

describe("readVicsDrafts: random and mutated files", () => {
  it("2000 random inputs (raw bytes, JSON-ish bytes, a VICS head then random bytes) read to reasoned items", async () => {
    const rng = prng();
    const head = Buffer.from(`{${V1},"value":[{"MD5":`);
    await withinBudget(15_000, async () => {
      for (let i = 0; i < 2000; i++) {
        const len = int(rng, 300);
        const body =
          i % 3 === 0
            ? randomBuffer(rng, len)
            : i % 3 === 1
              ? randomFrom(rng, '{}[]":,0123456789.eE-+ \n\tabcdefnlrstuMD5Media\\', len)
              : Buffer.concat([head, randomFrom(rng, '{}[]":,0123456789abcdef \\', len)]);
        const items = await read(body, chunksOf(rng, body));
        // Random input is not a VICS file: it always ends in a file fault.
        const last = items[items.length - 1];
        if (!last || last.ok || last.reason !== "MALFORMED_VICS") fail(`no final MALFORMED_VICS: ${JSON.stringify(summary(items))}`, body);
      }
    });
  });

  it("every truncation of a Media and a Cases export ends in a file fault, after the items already complete", async () => {
    const rng = prng();
    const files = [
      Buffer.from(mediaFile([media(1), media(2), media(3)])),
      Buffer.from(
        casesFile([
          { CaseID: 1, CaseNumber: "C-1", Media: [media(1), media(2)] },
          { CaseID: 2, Media: [media(1)] },
        ]),
      ),
    ];
    await withinBudget(15_000, async () => {
      for (const file of files) {
        const whole = summary(await read(file));
        expect(whole.every((s) => s === "ok")).toBe(true);
        for (const t of truncations(file)) {
          const items = await read(t, chunksOf(rng, t));
          const s = summary(items);
          if (s[s.length - 1] !== "MALFORMED_VICS") fail(`truncation not detected: ${JSON.stringify(s)}`, t);
          // Items before the cut are exactly the complete ones, all ok.
          if (!s.slice(0, -1).every((x) => x === "ok") || s.length - 1 > whole.length) fail(`bad prefix items ${JSON.stringify(s)}`, t);
        }
      }
    });
  });

  it("bit flips, boundary bytes and havoc at every position of valid exports", async () => {
    const rng = prng();
    const files = [
      Buffer.from(mediaFile([media(1), media(2, { PhotoDNA: randomHex(144) })])),
      Buffer.from(casesFile([{ CaseID: 7, Media: [media(1)] }])),
    ];
    let cases = 0;
    await withinBudget(20_000, async () => {
      for (const file of files) {
        for (const f of bitFlips(file, rng)) {
          await read(f, chunksOf(rng, f));
          cases++;
        }
        for (const b of byteSets(file, [0x00, 0x0a, 0x0d, 0x22, 0x2c, 0x3a, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x80, 0xc3, 0xff], rng)) {
          await read(b, chunksOf(rng, b));
          cases++;
        }
        for (let i = 0; i < 400; i++) {
          const h = havoc(rng, file);
          await read(h, chunksOf(rng, h));
          cases++;
        }
      }
    });
    expect(cases).toBeGreaterThan(3000);
  });

  it("random chunking never changes the result (tokens, escapes, UTF-8 sequences and the BOM split anywhere)", async () => {
    const rng = prng();
    const file = Buffer.from(`\uFEFF${mediaFile([media(1), media(2, { Series: '\u{1F600}\u00e9\\"\u2028' }), { MD5: 5 }, 17, media(3)])}`);
    const expected = JSON.stringify(await read(file));
    expect(summary(JSON.parse(expected) as DraftItem[])).toEqual(["ok", "ok", "INVALID_HASH", "MALFORMED_VICS", "ok"]);
    for (let i = 0; i < 300; i++) {
      const parts = randomChunks(rng, file, 1 + int(rng, 24));
      const got = JSON.stringify(await read(file, parts));
      if (got !== expected) fail(`chunking changed the result (${parts.length} chunks)`, file);
    }
    // Strings as chunks, too (a source may give text).
    expect(JSON.stringify(await read(file, [file.toString("utf8")]))).toBe(expected);
  });
});

describe("readVicsDrafts: deep nesting", () => {
  const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
  const good = () => JSON.stringify(media(9));

  it("an item nested up to 64 levels reads; deeper (up to 10,000) is one refused item and reading goes on", async () => {
    for (const depth of [60, 65, 100, 9_990]) {
      const file = `{${V1},"value":[{"MD5":"${randomHex(16)}","Exif":${deep(depth)}},${good()}]}`;
      const items = await withinBudget(5_000, () => read(file, randomChunks(prng(depth), Buffer.from(file), 4096)));
      expect(summary(items), `depth ${depth}`).toEqual([depth < 63 ? "ok" : "MALFORMED_VICS", "ok"]);
      if (depth >= 63) expect((items[0] as { detail: string }).detail).toMatch(/nested deeper than 64 levels/);
    }
    // Directly as a value element and as a Media element of a case.
    expect(summary(await read(`{${V1},"value":[${deep(500)},${good()}]}`))).toEqual(["MALFORMED_VICS", "ok"]);
    expect(summary(await read(`{${V2_CASES},"value":[{"CaseID":1,"Media":[${deep(500)},${good()}]}]}`))).toEqual(["MALFORMED_VICS", "ok"]);
  });

  it("100,000 levels anywhere (in an item, a case, a skipped root field, unclosed) is a file fault, not a RangeError", async () => {
    const cases = [
      `{${V1},"value":[${good()},{"MD5":"${randomHex(16)}","Exif":${deep(100_000)}},${good()}]}`,
      `{${V1},"value":[${good()},${deep(100_000)}]}`,
      `{${V2_CASES},"value":[{"CaseID":1,"Media":[${good()},${deep(100_000)}]}]}`,
      `{${V2_CASES},"value":[{"CaseID":1,"Notes":${deep(100_000)},"Media":[${good()}]}]}`,
      `{"x":${deep(100_000)},${V1},"value":[${good()}]}`,
      `{${V1},"value":[${good()},${"[".repeat(100_000)}`,
      `{${V1},"value":[${good()},${'{"a":'.repeat(100_000)}`,
      deep(100_000),
    ];
    for (const file of cases) {
      const items = await withinBudget(5_000, () => read(file, randomChunks(prng(), Buffer.from(file), 65536)));
      const last = items[items.length - 1];
      expect(last).toMatchObject({ ok: false, reason: "MALFORMED_VICS" });
      expect(
        summary(items)
          .slice(0, -1)
          .every((s) => s === "ok"),
      ).toBe(true);
    }
  });
});

describe("readVicsDrafts: wrong shapes and types", () => {
  it("value, Media and media items of the wrong type", async () => {
    const m = JSON.stringify(media(1));
    const cases: [string, string[]][] = [
      [`{${V1},"value":{"MD5":"${randomHex(16)}"}}`, ["MALFORMED_VICS"]],
      [`{${V1},"value":"[]"}`, ["MALFORMED_VICS"]],
      [`{${V1},"value":42}`, ["MALFORMED_VICS"]],
      [`{${V1},"value":null}`, ["MALFORMED_VICS"]],
      [
        `{${V1},"value":[1,"x",null,true,[],[${m}],${m}]}`,
        ["MALFORMED_VICS", "MALFORMED_VICS", "MALFORMED_VICS", "MALFORMED_VICS", "MALFORMED_VICS", "MALFORMED_VICS", "ok"],
      ],
      // Media not an array: the case itself is taken as a media item (it has no hash).
      [`{${V2_CASES},"value":[{"CaseID":1,"Media":${m}}]}`, ["NO_HASHES"]],
      [`{${V2_CASES},"value":[{"CaseID":1,"Media":"x"}]}`, ["NO_HASHES"]],
      [`{${V2_CASES},"value":[{"CaseID":1,"Media":7}]}`, ["NO_HASHES"]],
      // A case reference that is not text or a number: its media are refused, not sent without one.
      [`{${V2_CASES},"value":[{"CaseID":{"a":1},"Media":[${m}]}]}`, ["INVALID_FIELD"]],
      [`{${V2_CASES},"value":[{"CaseID":1,"Media":[1,null,${m}]}]}`, ["MALFORMED_VICS", "MALFORMED_VICS", "ok"]],
      // Metadata: not a string, missing, after value; two value arrays; content after the object.
      [`{"odata.metadata":17,"value":[${m}]}`, ["MALFORMED_VICS"]],
      [`{"value":[${m}]}`, ["MALFORMED_VICS"]],
      [`{"value":[${m}],${V1}}`, ["MALFORMED_VICS"]],
      [`{${V1},"value":[${m}],"Value":[${m}]}`, ["ok", "MALFORMED_VICS"]],
      // A syntax error drops the items completed in its own 4 KiB slice (see FEED_CHARS): here, the one item.
      [`{${V1},"value":[${m}]} {}`, ["MALFORMED_VICS"]],
      [`{${V1},"value":[${m}]}\r\n \t`, ["ok"]],
      [`[${m}]`, ["MALFORMED_VICS"]],
      ["", ["MALFORMED_VICS"]],
      ["\uFEFF", ["MALFORMED_VICS"]],
      [" \r\n ", ["MALFORMED_VICS"]],
      [`{${V1}}`, ["MALFORMED_VICS"]],
    ];
    for (const [file, expected] of cases) expect(summary(await read(file)), file.slice(0, 120)).toEqual(expected);
  });

  it("a syntax error after many items loses at most the items of its last 4 KiB of text, however the source is chunked", async () => {
    const items = Array.from({ length: 300 }, (_, i) => JSON.stringify(media(i)));
    const file = Buffer.from(`{${V1},"value":[${items.join(",")},{"MD5":"x"} x]}`);
    const perSlice = Math.ceil(4096 / Math.min(...items.map((t) => t.length))) + 1;
    for (const parts of [[file], randomChunks(prng(), file, 65536), [file.toString("utf8")]]) {
      const s = summary(await read(file, parts));
      expect(s[s.length - 1]).toBe("MALFORMED_VICS");
      expect(s.filter((x) => x === "ok").length).toBeGreaterThanOrEqual(300 - perSlice);
    }
  });

  it("numbers where strings are expected and other wrong types in a media item", async () => {
    const h = randomHex(16);
    const cases: [Record<string, unknown>, string][] = [
      [{ MD5: 1234 }, "INVALID_HASH"],
      [{ MD5: [h] }, "INVALID_HASH"],
      [{ MD5: { value: h } }, "INVALID_HASH"],
      [{ MD5: true }, "INVALID_HASH"],
      [{ MD5: `${h}\u0000` }, "INVALID_HASH"],
      [{ MD5: h, Category: "1.5" }, "INVALID_CATEGORY"],
      [{ MD5: h, Category: 1.5 }, "INVALID_CATEGORY"],
      [{ MD5: h, Category: 5 }, "INVALID_CATEGORY"],
      [{ MD5: h, Category: -1 }, "INVALID_CATEGORY"],
      [{ MD5: h, Category: [1] }, "INVALID_CATEGORY"],
      [{ MD5: h, Category: "constructor" }, "INVALID_CATEGORY"],
      [{ MD5: h, UKCategory: 1 }, "INVALID_CATEGORY"],
      [{ MD5: h, UKCategory: "__proto__" }, "INVALID_CATEGORY"],
      [{ MD5: h, IsDistributed: "maybe" }, "INVALID_FIELD"],
      [{ MD5: h, IsDistributed: 2 }, "INVALID_FIELD"],
      [{ MD5: h, IsDistributed: {} }, "INVALID_FIELD"],
      [{ MD5: h, MediaID: {} }, "INVALID_FIELD"],
      [{ MD5: h, MediaID: [1] }, "INVALID_FIELD"],
      [{ MD5: h, Series: true }, "INVALID_FIELD"],
      [{ MD5: h, Series: "x".repeat(300) }, "INVALID_FIELD"],
      [{ MD5: h, Series: "a\u0000b" }, "INVALID_FIELD"], // PostgreSQL cannot store U+0000
      [{ MD5: h, Grader: "\ud800" }, "INVALID_FIELD"], // nor an unpaired surrogate in jsonb
      [{ MD5: h, md5: h }, "INVALID_FIELD"],
      [{ PDQ: randomHex(32), PDQQuality: "high" }, "INVALID_HASH"],
      [{ PDQ: randomHex(32), PDQQuality: 101 }, "INVALID_HASH"],
      // biome-ignore lint/correctness/noPrecisionLoss: a literal that overflows to Infinity is the hostile input
      [{ PDQ: randomHex(32), PDQQuality: 1e400 }, "INVALID_HASH"],
      [{ PhotoDNA: `${"=".repeat(50_000)}A` }, "INVALID_HASH"],
      [{ Category: 1 }, "NO_HASHES"],
      [{}, "NO_HASHES"],
    ];
    const files = cases.map(([m]) => JSON.stringify(m).replace('"PDQQuality":null', '"PDQQuality":1e400'));
    const items = await withinBudget(5_000, () => read(`{${V1},"value":[${files.join(",")}]}`));
    expect(summary(items)).toEqual(cases.map(([, r]) => r));
    // Raw numbers JSON.stringify cannot write: a MediaID of 1e400 or 20 digits is still an id.
    const raw = await read(
      `{${V1},"value":[{"MD5":"${h}","MediaID":1e400},{"MD5":"${h}","MediaID":123456789012345678901234567890},{"MD5":"${h}","Category":1e0}]}`,
    );
    expect(summary(raw)).toEqual(["ok", "ok", "ok"]);
    expect(raw[1]?.ok && raw[1].draft.submissionId).toBe(`${PREFIX}123456789012345678901234567890`);
  });

  it('prototype keys: a root "constructor", "toString" or "__proto__" is not the metadata; media keys pollute nothing', async () => {
    const m = JSON.stringify(media(1));
    for (const key of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
      // Before the fix the key found Object.prototype's property and passed for "odata.metadata".
      expect(summary(await read(`{"${key}":"x","value":[${m}]}`)), key).toEqual(["MALFORMED_VICS"]);
      // After real metadata it is just an ignored field: the profile stays right.
      const items = await read(`{${V1},"${key}":"x","value":[${m}]}`);
      expect(items[0]?.ok && items[0].draft.grade.vics?.profile, key).toBe("vics-1.x");
    }
    const polluting = [
      `{"__proto__":{"polluted":1},"MD5":"${randomHex(16)}"}`,
      `{"MD5":"${randomHex(16)}","constructor":{"prototype":{"polluted":1}}}`,
      `{"__proto__":{"MD5":"${randomHex(16)}"}}`,
    ];
    const items = await read(`{${V1},"__proto__":{"polluted":1},"value":[${polluting.join(",")}]}`);
    expect(summary(items)).toEqual(["ok", "ok", "NO_HASHES"]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("MD5");
  });
});

describe("readVicsDrafts: encodings", () => {
  it("a BOM (split across chunks or not), invalid UTF-8 in strings, raw and escaped NUL, CR and CRLF whitespace", async () => {
    const h = randomHex(16);
    const file = Buffer.from(`\uFEFF{${V1},\r\n"value":[\r{"MD5":"${h}"}\r\n]\r}`);
    expect(summary(await read(file, [file.subarray(0, 1), file.subarray(1, 2), file.subarray(2)]))).toEqual(["ok"]);
    expect(summary(await read(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), file.subarray(3)])))).toEqual([
      "MALFORMED_VICS",
    ]);
    // Invalid UTF-8 anywhere (an ignored field, a hash, between items) refuses the file, naming the encoding and the offset.
    const bad = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80])];
    for (const b of bad) {
      const head = `{${V1},"value":[{"MD5":"${h}","FileName":"a`;
      const inName = Buffer.concat([Buffer.from(head), b, Buffer.from('"}]}')]);
      const items = await read(inName, randomChunks(prng(), inName, 3));
      expect(summary(items)).toEqual(["MALFORMED_VICS"]);
      expect((items[0] as { detail: string }).detail).toMatch(new RegExp(`^not valid UTF-8: byte 0x[0-9a-f]{2} at offset ${head.length}`));
      const inHash = Buffer.concat([Buffer.from(`{${V1},"value":[{"MD5":"${h.slice(0, 31)}`), b, Buffer.from('"}]}')]);
      expect(summary(await read(inHash))).toEqual(["MALFORMED_VICS"]);
      const outside = Buffer.concat([Buffer.from(`{${V1},"value":[`), b, Buffer.from(`{"MD5":"${h}"}]}`)]);
      expect(summary(await read(outside))).toEqual(["MALFORMED_VICS"]);
    }
    expect(summary(await read(`{${V1},"value":[{"MD5":"${h}\u0000"}]}`))).toEqual(["MALFORMED_VICS"]);
    expect(summary(await read(`{${V1},"value":[{"MD5":"${h}\\u0000"}]}`))).toEqual(["INVALID_HASH"]);
    expect(summary(await read(Buffer.concat([Buffer.from(`{${V1},"value":[`), Buffer.alloc(100), Buffer.from("]}")])))).toEqual([
      "MALFORMED_VICS",
    ]);
    // UTF-16 with its byte-order mark is decoded, split anywhere; without one, or as UTF-32, it is refused by name.
    const utf16 = Buffer.from(`\uFEFF{${V1},"value":[{"MD5":"${h}","Series":"\u{1F600}"}]}`, "utf16le");
    expect(summary(await read(utf16, randomChunks(prng(), utf16, 9)))).toEqual(["ok"]);
    const noBom = await read(utf16.subarray(2));
    expect((noBom[0] as { detail: string }).detail).toMatch(/UTF-16 without a byte-order mark/);
    const utf32 = await read(Buffer.from([0xff, 0xfe, 0, 0, 0x7b, 0, 0, 0]));
    expect((utf32[0] as { detail: string }).detail).toMatch(/UTF-32/);
  });
});

describe("readVicsDrafts: size limits in process", () => {
  it("a 40 MiB string in one item (limit 64 KiB) is refused, the next item reads, heap stays small", async () => {
    const piece = "a".repeat(MB);
    const heap = new HeapWatch();
    const parts = function* (): Generator<string> {
      yield `{${V1},"value":[{"MD5":"${randomHex(16)}","Note":"`;
      for (let i = 0; i < 40; i++) yield piece;
      yield `"},{"MD5":"${randomHex(16)}"}]}`;
    };
    const items = await withinBudget(10_000, () =>
      collect(
        readVicsDrafts(
          sourceOf(parts(), () => heap.sample()),
          { submissionIdPrefix: PREFIX, maxItemChars: 64 * 1024 },
        ),
        () => heap.sample(),
      ),
    );
    expect(summary(items)).toEqual(["MALFORMED_VICS", "ok"]);
    expect((items[0] as { detail: string }).detail).toMatch(/larger than 65536 characters/);
    // Read in bounded memory, the peak is the source's own 1 MiB chunks and garbage not yet collected;
    // holding the string whole would pass the limit.
    expect(heap.peak).toBeLessThan(42 * MB);
  });

  it("many fields, long keys and long numbers all count towards maxItemChars", async () => {
    const h = randomHex(16);
    const long = "9".repeat(70_000);
    const cases = [
      `{"MD5":"${h}",${Array.from({ length: 5000 }, (_, i) => `"f${i}":"${"x".repeat(20)}"`).join(",")}}`,
      `{"MD5":"${h}","${"k".repeat(70_000)}":1}`,
      `{"MD5":"${h}","${"k".repeat(70_000)}":[]}`,
      `{"MD5":"${h}","Size":${long}}`,
      `{"MD5":"${h}","Sizes":[${long}]}`,
    ];
    const items = await read(`{${V1},"value":[${cases.join(",")},{"MD5":"${h}"}]}`, undefined, 64 * 1024);
    expect(summary(items)).toEqual([...cases.map(() => "MALFORMED_VICS"), "ok"]);
  });
});

describe("readVicsDrafts: what it throws", () => {
  it("a bad submissionIdPrefix throws ValidationError (INVALID_FIELD) at once, before reading", () => {
    for (const prefix of ["", "has space", "x".repeat(97), "a/b", "\u0000", 17, null, undefined, {}, ["a"]]) {
      let caught: unknown;
      try {
        readVicsDrafts(Readable.from([]), { submissionIdPrefix: prefix as string });
      } catch (err) {
        caught = err;
      }
      expect(caught, String(prefix)).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).reason).toBe("INVALID_FIELD");
    }
  });

  it("an error of the source itself propagates from the iteration, after the items before it", async () => {
    const boom = new Error("disk on fire");
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`{${V1},"value":[{"MD5":"${randomHex(16)}"},`);
      throw boom;
    }
    const seen: string[] = [];
    await expect(collect(readVicsDrafts(source(), { submissionIdPrefix: PREFIX }), (i) => seen.push(i.ok ? "ok" : i.reason))).rejects.toBe(
      boom,
    );
    expect(seen).toEqual(["ok"]);
  });
});

describe("readVicsDrafts: big inputs, in a child process with a 160 MB heap", () => {
  let runs: Record<string, Promise<IsolatedResult>> | undefined;
  const isolated = (name: string): Promise<IsolatedResult> => {
    runs ??= runIsolated(["vicsHugeString", "vicsHugeNumber", "vicsHugeKeys", "vicsDeepUnclosed", "vicsOneBigChunk"], {
      maxOldMb: 160,
      timeoutMs: 50_000,
    });
    return runs[name] as Promise<IsolatedResult>;
  };

  const big = (name: string, expected: string[], peakMb: number) =>
    it(name, { timeout: 60_000 }, async () => {
      const run = await isolated(name);
      const r = run.result as { count: number; summary: string[] };
      expect(r.summary.map((s) => s.split(":")[0])).toEqual(expected);
      expect(run.ms).toBeLessThan(20_000);
      expect(run.peakHeapBytes, `peak ${Math.round(run.peakHeapBytes / MB)} MB`).toBeLessThan(peakMb * MB);
    });

  // Each limit is below what holding the hostile value whole takes, so a reader that buffers it fails.
  big("vicsHugeString", ["MALFORMED_VICS", "ok"], 40);
  big("vicsHugeNumber", ["MALFORMED_VICS", "ok"], 40);
  big("vicsHugeKeys", ["MALFORMED_VICS", "MALFORMED_VICS", "ok"], 60);
  big("vicsDeepUnclosed", ["MALFORMED_VICS"], 40);

  it("2 MB of media items given as one chunk are yielded as they are read", {
    timeout: 60_000,
  }, async () => {
    const run = await isolated("vicsOneBigChunk");
    const r = run.result as { count: number; summary: string[] };
    expect(r.count).toBe(MB + 1);
    expect(r.summary[0]).toMatch(/^MALFORMED_VICS: value\[0\]: a media item must be an object/);
    expect(run.peakHeapBytes, `peak ${Math.round(run.peakHeapBytes / MB)} MB`).toBeLessThan(100 * MB);
  });
});
