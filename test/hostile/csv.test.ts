/**
 * Hostile input for readCsvDrafts. Reading never throws once started (only a bad
 * submissionIdPrefix throws, at once, and an error of the source itself propagates); every
 * failed item has a reason of REASON_CODES (never INTERNAL) and its row's bytes. Random bytes,
 * every truncation / bit flip / boundary byte of valid lists, random chunking, very long lines,
 * quoting abuse, BOMs, invalid UTF-8, NUL bytes, CR/CRLF, prototype names.
 */
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readCsvDrafts } from "../../services/force-cli/formats/csv.ts";
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

const CSV_REASONS = ["MALFORMED_CSV", "INVALID_FIELD", "INVALID_HASH", "INVALID_CATEGORY", "NO_HASHES"];
const PREFIX = "force-a:hostile-csv:";

async function read(input: Buffer | string, parts: Iterable<Buffer | string> = [input], maxLineBytes?: number): Promise<DraftItem[]> {
  const opts = maxLineBytes === undefined ? { submissionIdPrefix: PREFIX } : { submissionIdPrefix: PREFIX, maxLineBytes };
  let items: DraftItem[];
  try {
    items = await collect(readCsvDrafts(sourceOf(parts), opts));
  } catch (err) {
    return fail(`readCsvDrafts threw ${(err as Error).name}: ${(err as Error).message}`, input);
  }
  expectDraftItems(items, input, CSV_REASONS);
  return items;
}

const summary = (items: DraftItem[]): string[] => items.map((i) => (i.ok ? "ok" : i.reason));

function chunksOf(rng: Rng, buf: Buffer): Buffer[] {
  return rng() < 0.5 ? [buf] : randomChunks(rng, buf, 1 + int(rng, 40));
}

function validList(rows = 4): string {
  const lines = ["MD5, SHA1 ,pdq,PDQ-Quality,category,content type,submission_id,case_ref,series"];
  for (let i = 0; i < rows; i++) {
    lines.push(
      `${randomHex(16).toUpperCase()},"${randomHex(20)}",${randomHex(32)},${i * 20},Cat ${"ABC"[i % 3]},${i % 2 ? "video" : ""},,"SYN, ""quoted""",série-${i}`,
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}

describe("readCsvDrafts: random and mutated lists", () => {
  it("3000 random inputs (raw bytes, CSV-ish bytes, a valid header then random bytes) read to reasoned items", async () => {
    const rng = prng();
    await withinBudget(10_000, async () => {
      for (let i = 0; i < 3000; i++) {
        const len = int(rng, 300);
        const body =
          i % 3 === 0
            ? randomBuffer(rng, len)
            : i % 3 === 1
              ? randomFrom(rng, 'md5,sha1"\r\n\t 0123456789abcdefABCDEF', len)
              : Buffer.concat([Buffer.from("md5,category,submission_id\n"), randomFrom(rng, ',"\r\n 0123456789abcdefABC_:-', len)]);
        await read(body, chunksOf(rng, body));
      }
    });
  });

  it("every truncation, bit flip, boundary byte and havoc of a valid list; a cut only ever hurts the row it cuts", async () => {
    const rng = prng();
    const text = validList();
    const file = Buffer.from(`\uFEFF${text}`);
    const rows = text.split("\r\n").slice(1, -1);
    let cases = 0;
    await withinBudget(15_000, async () => {
      expect(summary(await read(file))).toEqual(rows.map(() => "ok"));
      for (const t of truncations(file)) {
        const s = summary(await read(t, chunksOf(rng, t)));
        // Every complete row before the cut reads; only the last (cut) row may fail.
        if (!s.slice(0, -1).every((x) => x === "ok") && !(s.length === 1 && s[0] === "MALFORMED_CSV"))
          fail(`a cut hurt an earlier row: ${JSON.stringify(s)}`, t);
        cases++;
      }
      for (const f of bitFlips(file)) {
        await read(f, chunksOf(rng, f));
        cases++;
      }
      for (const b of byteSets(file, [0x00, 0x0a, 0x0d, 0x22, 0x2c, 0x20, 0x80, 0xc3, 0xff], rng)) {
        await read(b, chunksOf(rng, b));
        cases++;
      }
      for (let i = 0; i < 1000; i++) {
        const h = havoc(rng, file);
        await read(h, chunksOf(rng, h));
        cases++;
      }
    });
    expect(cases).toBeGreaterThan(4000);
  });

  it("random chunking never changes the result", async () => {
    const rng = prng();
    const file = Buffer.from(`\uFEFF${validList(3)}${randomHex(16)},,,,Z,,,,\n\n,,,,,,,,\n"unterminated\n${"ü".repeat(10)}\r\n`);
    const expected = JSON.stringify(await read(file));
    for (let i = 0; i < 300; i++) {
      const parts = randomChunks(rng, file, 1 + int(rng, 16));
      if (JSON.stringify(await read(file, parts)) !== expected) fail(`chunking changed the result (${parts.length} chunks)`, file);
    }
    expect(JSON.stringify(await read(file, [file.toString("utf8")]))).toBe(expected);
  });
});

describe("readCsvDrafts: long lines and quoting abuse", () => {
  it("a 10 MiB line is one refused row (original cut to the limit), the rows around it read, heap stays small", async () => {
    const heap = new HeapWatch();
    const piece = Buffer.alloc(MB, 0x61);
    const parts = function* (): Generator<Buffer | string> {
      yield `md5,series\n${randomHex(16)},a\n`;
      for (let i = 0; i < 10; i++) yield piece;
      yield `\n${randomHex(16)},b\n`;
    };
    const items = await withinBudget(5_000, () =>
      collect(
        readCsvDrafts(
          sourceOf(parts(), () => heap.sample()),
          { submissionIdPrefix: PREFIX },
        ),
        () => heap.sample(),
      ),
    );
    expect(summary(items)).toEqual(["ok", "MALFORMED_CSV", "ok"]);
    expect(items[1]?.original.length).toBe(64 * 1024);
    expect((items[1] as { detail: string }).detail).toMatch(/^line 3: longer than 65536 bytes/);
    expect(heap.peak).toBeLessThan(16 * MB);
  });

  it("a 50 MiB line in a child process with a 64 MB heap", { timeout: 60_000 }, async () => {
    const run = await (runIsolated(["csvHugeLine"], { maxOldMb: 64, timeoutMs: 30_000 })["csvHugeLine"] as Promise<IsolatedResult>);
    expect((run.result as { summary: string[] }).summary.map((s) => s.split(":")[0])).toEqual(["MALFORMED_CSV", "ok"]);
    expect(run.peakHeapBytes).toBeLessThan(32 * MB);
  });

  it("an overlong header, quotes and commas in bulk, ragged rows", async () => {
    const h = randomHex(16);
    expect(summary(await read(`${"md5,".repeat(20_000)}md5\n${h}\n`))).toEqual(["MALFORMED_CSV"]);
    const cases: [string, string][] = [
      [`"${'""'.repeat(20_000)}"`, "MALFORMED_CSV"], // one field of quotes: 1 field for 2 columns
      [`"${h}"${'"'.repeat(1001)},x`, "MALFORMED_CSV"],
      [`${",".repeat(30_000)}`, "MALFORMED_CSV"],
      [`"${h},x`, "MALFORMED_CSV"],
      [`${h}"x,y`, "MALFORMED_CSV"],
      [`"${h}" junk,x`, "MALFORMED_CSV"],
      [`${h}`, "MALFORMED_CSV"],
      [`${h},x,y`, "MALFORMED_CSV"],
      [`"${h}","${"x".repeat(300)}"`, "INVALID_FIELD"],
      [`${h},${"\t".repeat(1000)}`, "ok"],
      [`"${h}",""`, "ok"],
    ];
    const items = await withinBudget(5_000, () => read(`md5,series\n${cases.map(([row]) => row).join("\n")}\n`));
    expect(summary(items)).toEqual(cases.map(([, r]) => r));
  });

  it("maxLineBytes limits every row, however small", async () => {
    for (const max of [1, 7, 16]) {
      const items = await read(`md5\n${randomHex(16)}\n`, undefined, max);
      expect(summary(items)).toEqual(["MALFORMED_CSV"]);
      expect(items[0]?.original.length).toBeLessThanOrEqual(max);
    }
  });
});

describe("readCsvDrafts: encodings, line endings, odd values", () => {
  it("BOMs, UTF-16, invalid UTF-8 and NUL bytes", async () => {
    const h = randomHex(16);
    const list = `md5,series\n${h},a\n`;
    const bom = Buffer.from(`\uFEFF${list}`);
    expect(summary(await read(bom, [bom.subarray(0, 1), bom.subarray(1, 2), bom.subarray(2)]))).toEqual(["ok"]);
    // A second BOM starts the first column name, and String.prototype.trim drops U+FEFF with the blanks.
    expect(summary(await read(`\uFEFF\uFEFF${list}`))).toEqual(["ok"]);
    expect(summary(await read(`md5,\uFEFFseries\uFEFF\n${h},a\n`))).toEqual(["ok"]);
    expect(summary(await read(Buffer.from(`\uFEFF${list}`, "utf16le")))).toEqual(["MALFORMED_CSV"]);
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x00]]) {
      const b = Buffer.from(bad);
      expect(summary(await read(Buffer.concat([Buffer.from(`md5,series\n${h.slice(0, 31)}`), b, Buffer.from(",a\n")])))).toEqual([
        "INVALID_HASH",
      ]);
      // In free text, invalid UTF-8 decodes to U+FFFD (fine); U+0000 is refused, since PostgreSQL cannot store it.
      const inSeries = Buffer.concat([Buffer.from(`md5,series\n${h},a`), b, Buffer.from("\n")]);
      expect(summary(await read(inSeries))).toEqual([bad[0] === 0 ? "INVALID_FIELD" : "ok"]);
      expect(summary(await read(Buffer.concat([Buffer.from("md5,ser"), b, Buffer.from(`ies\n${h},a\n`)])))).toEqual(["MALFORMED_CSV"]);
    }
    expect(summary(await read(Buffer.alloc(4096)))).toEqual(["MALFORMED_CSV"]);
    expect(summary(await read(Buffer.concat([Buffer.from(`md5\n${h}\n`), Buffer.alloc(50), Buffer.from(`\n${h}\n`)])))).toEqual([
      "ok",
      "INVALID_HASH",
      "ok",
    ]);
  });

  it("CRLF and LF mix freely; CR-only line ends make one line, refused as MALFORMED_CSV (documented: rows end in \\n)", async () => {
    const [a, b] = [randomHex(16), randomHex(16)];
    expect(summary(await read(`md5\r\n${a}\r\n\r\n${b}\n`))).toEqual(["ok", "ok"]);
    const cr = await read(`md5\r${a}\r${b}\r`);
    expect(summary(cr)).toEqual(["MALFORMED_CSV"]);
    expect((cr[0] as { detail: string }).detail).toMatch(/unknown column/);
    // A stray CR at the end of a cell is trimmed with it (cells are trimmed); inside a value it stays (and fails the hash).
    expect(summary(await read(`md5\n${a}\r\r\n`))).toEqual(["ok"]);
    expect(summary(await read(`md5\n"${a}\r"\r\n`))).toEqual(["ok"]);
    expect(summary(await read(`md5\n"${a.slice(0, 16)}\r${a.slice(16)}"\r\n`))).toEqual(["INVALID_HASH"]);
    expect(summary(await read(""))).toEqual(["MALFORMED_CSV"]);
    expect(summary(await read("\r\n \t \n\r\n"))).toEqual(["MALFORMED_CSV"]);
  });

  it("prototype names as columns and values, and numbers that are not what they seem", async () => {
    const h = randomHex(16);
    for (const col of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      expect(summary(await read(`md5,${col}\n${h},x\n`)), col).toEqual(["MALFORMED_CSV"]);
    }
    const rows: [string, string][] = [
      [`${h},__proto__,,`, "INVALID_CATEGORY"],
      [`${h},constructor,,`, "INVALID_CATEGORY"],
      [`${h},,toString,`, "INVALID_FIELD"],
      [`${h},,,__proto__`, "ok"],
      [`${h},,,a b`, "INVALID_FIELD"],
      [`${h},,,${"x".repeat(129)}`, "INVALID_FIELD"],
    ];
    const items = await read(`md5,category,content_type,submission_id\n${rows.map(([r]) => r).join("\n")}\n`);
    expect(summary(items)).toEqual(rows.map(([, r]) => r));
    const pdq = randomHex(32);
    const qualities: [string, string][] = [
      ["1e2", "INVALID_HASH"],
      ["-1", "INVALID_HASH"],
      ["0x10", "INVALID_HASH"],
      ["101", "INVALID_HASH"],
      ["99999999999999999999999", "INVALID_HASH"],
      ["NaN", "INVALID_HASH"],
      ["Infinity", "INVALID_HASH"],
      ["0100", "ok"], // leading zeros: 100
      ["050", "ok"],
    ];
    const q = await read(`pdq,pdq_quality\n${qualities.map(([v]) => `${pdq},${v}`).join("\n")}\n`);
    expect(summary(q)).toEqual(qualities.map(([, r]) => r));
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });
});

describe("readCsvDrafts: what it throws", () => {
  it("a bad submissionIdPrefix throws ValidationError (INVALID_FIELD) at once, before reading", () => {
    for (const prefix of ["", "a b", "x".repeat(97), "\n", 0, null, undefined, {}]) {
      let caught: unknown;
      try {
        readCsvDrafts(Readable.from([]), { submissionIdPrefix: prefix as string });
      } catch (err) {
        caught = err;
      }
      expect(caught, String(prefix)).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).reason).toBe("INVALID_FIELD");
    }
  });

  it("an error of the source itself propagates from the iteration, after the rows before it", async () => {
    const boom = new Error("connection reset");
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`md5\n${randomHex(16)}\n${randomHex(8)}`);
      throw boom;
    }
    const seen: string[] = [];
    await expect(collect(readCsvDrafts(source(), { submissionIdPrefix: PREFIX }), (i) => seen.push(i.ok ? "ok" : i.reason))).rejects.toBe(
      boom,
    );
    expect(seen).toEqual(["ok"]);
  });
});
