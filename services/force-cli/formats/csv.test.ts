import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../shared/errors.ts";
import { randomHex } from "../../../test/support/fixtures.ts";
import type { DraftItem } from "./common.ts";
import { CSV_COLUMNS, parseCsvLine, readCsvDrafts } from "./csv.ts";

function chunked(text: string | Buffer, size = 5): Readable {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

async function read(text: string | Buffer, opts: { size?: number; maxLineBytes?: number } = {}): Promise<DraftItem[]> {
  const out: DraftItem[] = [];
  const o =
    opts.maxLineBytes === undefined
      ? { submissionIdPrefix: "force-a:list-9:" }
      : { submissionIdPrefix: "force-a:list-9:", maxLineBytes: opts.maxLineBytes };
  for await (const item of readCsvDrafts(chunked(text, opts.size ?? 5), o)) out.push(item);
  return out;
}

function ok(item: DraftItem | undefined): Extract<DraftItem, { ok: true }> {
  if (!item?.ok) throw new Error(`expected an ok item, got ${JSON.stringify(item)}`);
  return item;
}

function failed(item: DraftItem | undefined): Extract<DraftItem, { ok: false }> {
  if (!item || item.ok) throw new Error(`expected a failed item, got ${JSON.stringify(item)}`);
  return item;
}

function summary(items: DraftItem[]): string[] {
  return items.map((i) => (i.ok ? "ok" : i.reason));
}

describe("parseCsvLine", () => {
  it("splits RFC 4180 fields within a line", () => {
    expect(parseCsvLine("a,b,c")).toEqual(["a", "b", "c"]);
    expect(parseCsvLine(" a , b ,")).toEqual(["a", "b", ""]);
    expect(parseCsvLine('"x, y","say ""hi""",""')).toEqual(["x, y", 'say "hi"', ""]);
    expect(parseCsvLine("")).toEqual([""]);
    expect(parseCsvLine(' "q" ,z')).toEqual(["q", "z"]);
  });

  it("refuses broken quoting", () => {
    expect(() => parseCsvLine('"open,b')).toThrow(/unterminated quoted field/);
    expect(() => parseCsvLine('"a"b,c')).toThrow(/after a closing quote/);
    expect(() => parseCsvLine('ab"c,d')).toThrow(/quote inside an unquoted field/);
  });
});

describe("readCsvDrafts", () => {
  it("reads every column", async () => {
    const md5 = randomHex(16);
    const sha1 = randomHex(20);
    const sha256 = randomHex(32);
    const pdq = randomHex(32);
    const pdna = randomBytes(144);
    const text = [
      "md5,sha1,sha256,pdq,pdq_quality,photodna,category,content_type,submission_id,case_ref,series",
      `${md5.toUpperCase()},${sha1},${sha256},${pdq},85,${pdna.toString("hex")},a,video,sub-0001,"SYN-CASE, 7","Series ""X"""`,
      `${randomHex(16)},,,,,${pdna.toString("base64")},Cat B,,,,`,
      `${randomHex(16)},,,,,,,IMAGE,,,`,
    ].join("\n");
    const items = await read(text);
    expect(summary(items)).toEqual(["ok", "ok", "ok"]);
    const a = ok(items[0]);
    expect(a.index).toBe(0);
    expect(a.draft).toEqual({
      submissionId: "sub-0001",
      op: "ASSERT",
      contentType: "video",
      hashes: [
        { alg: "md5", value: md5, quality: null },
        { alg: "sha1", value: sha1, quality: null },
        { alg: "sha256", value: sha256, quality: null },
        { alg: "pdq", value: pdq, quality: 85 },
        { alg: "photodna", value: pdna.toString("base64"), quality: null },
      ],
      grade: { uk: "A", ics: null, vics: null },
      gradingStatus: "indicative",
      lawEnforcement: {
        caseRef: "SYN-CASE, 7",
        series: 'Series "X"',
        victimIdentified: null,
        offenderIdentified: null,
        isDistributed: null,
        graderRef: null,
      },
    });
    expect(a.original.toString()).toBe(text.split("\n")[1]);
    const b = ok(items[1]);
    expect(b.draft.submissionId).toBe("force-a:list-9:3");
    expect(b.draft.grade.uk).toBe("B");
    expect(b.draft.hashes[1]).toEqual({ alg: "photodna", value: pdna.toString("base64"), quality: null });
    expect(b.draft.contentType).toBe("image");
    expect(ok(items[2]).draft.grade.uk).toBe("UNGRADED");
  });

  it("takes any subset of columns in any order, names case-insensitively", async () => {
    const md5 = randomHex(16);
    const items = await read(
      `Category , MD5,PDQ Quality,pdq\nc,${md5},,${randomHex(32)}\nNON_INDECENT,${randomHex(16)},40,${randomHex(32)}\n`,
    );
    expect(ok(items[0]).draft.hashes[0]).toEqual({ alg: "md5", value: md5, quality: null });
    expect(ok(items[0]).draft.grade.uk).toBe("C");
    expect(ok(items[1]).draft.hashes[1]?.quality).toBe(40);
    expect(ok(items[1]).draft.grade.uk).toBe("NON_INDECENT");
  });

  it("copes with CRLF, a BOM, blank lines and no final newline; ids follow line numbers", async () => {
    const text = `\uFEFFmd5\r\n${randomHex(16)}\r\n\r\n   \r\n${randomHex(16)}`;
    const items = await read(text, { size: 3 });
    expect(items.map((i) => [i.index, ok(i).draft.submissionId])).toEqual([
      [0, "force-a:list-9:2"],
      [1, "force-a:list-9:5"],
    ]);
    expect(items[0]?.original.toString()).toMatch(/^[0-9a-f]{32}$/);
  });

  it("fails the whole file for an unknown column, listing the allowed ones", async () => {
    const items = await read(`md5,filename\n${randomHex(16)},a.jpg\n`);
    expect(items).toHaveLength(1);
    const f = failed(items[0]);
    expect(f.reason).toBe("MALFORMED_CSV");
    expect(f.detail).toContain('unknown column "filename"');
    expect(f.detail).toContain(CSV_COLUMNS.join(", "));
    expect(f.original.toString()).toBe("md5,filename");
  });

  it("fails the whole file for a repeated column, no hash column, or no header", async () => {
    expect(failed((await read(`md5,MD5\n${randomHex(16)},${randomHex(16)}\n`))[0]).detail).toMatch(/given twice/);
    expect(failed((await read("category,series\nA,x\n"))[0]).detail).toMatch(/no hash column/);
    for (const empty of ["", "\n\n", "\uFEFF"]) {
      const items = await read(empty);
      expect(items).toHaveLength(1);
      expect(failed(items[0])).toMatchObject({ reason: "MALFORMED_CSV", detail: "empty file: no header row" });
    }
  });

  it("fails a row with the wrong number of fields, keeping its exact bytes, and goes on", async () => {
    const bad = `${randomHex(16)},A,extra`;
    const items = await read(`md5,category\r\n${bad}\r\n${randomHex(16)}\r\n${randomHex(16)},B\r\n`);
    expect(summary(items)).toEqual(["MALFORMED_CSV", "MALFORMED_CSV", "ok"]);
    const f = failed(items[0]);
    expect(f.detail).toBe("line 2: 3 fields, but the header has 2");
    expect(f.original.toString()).toBe(bad);
    expect(failed(items[1]).detail).toBe("line 3: 1 field, but the header has 2");
    expect(items.map((i) => i.index)).toEqual([0, 1, 2]);
  });

  it("fails a row with broken quoting alone", async () => {
    const items = await read(`md5,series\n${randomHex(16)},"unclosed\n${randomHex(16)},"x"y\n${randomHex(16)},fine\n`);
    expect(summary(items)).toEqual(["MALFORMED_CSV", "MALFORMED_CSV", "ok"]);
    expect(failed(items[0]).detail).toMatch(/^line 2: unterminated quoted field/);
  });

  it("fails rows with bad hashes, qualities, categories, content types or ids", async () => {
    const pdq = randomHex(32);
    const rows = [
      `${randomHex(16).slice(1)},,,A,,`, // short md5
      `${randomHex(15)}zz,,,A,,`, // non-hex md5
      `${randomHex(16)},${pdq},101,A,,`, // quality out of range
      `${randomHex(16)},${pdq},high,A,,`, // quality not a number
      `${randomHex(16)},,80,A,,`, // quality without pdq
      `${randomHex(16)},,,D,,`, // category
      `${randomHex(16)},,,A,audio,`, // content type
      `${randomHex(16)},,,A,,has space`, // submission id
      `,,,A,,`, // no hash
      `${randomHex(16)},${pdq},,A,,`, // fine
    ];
    const items = await read(`md5,pdq,pdq_quality,category,content_type,submission_id\n${rows.join("\n")}\n`);
    expect(summary(items)).toEqual([
      "INVALID_HASH",
      "INVALID_HASH",
      "INVALID_HASH",
      "INVALID_HASH",
      "INVALID_HASH",
      "INVALID_CATEGORY",
      "INVALID_FIELD",
      "INVALID_FIELD",
      "NO_HASHES",
      "ok",
    ]);
    expect(failed(items[0]).detail).toBe("line 2: md5: md5 must be 32 hex characters, got 31");
    expect(failed(items[2]).detail).toBe("line 4: pdq: pdq quality must be an integer from 0 to 100, got number 101");
    expect(failed(items[3]).detail).toBe('line 5: pdq_quality: must be an integer from 0 to 100, got "high"');
    expect(failed(items[4]).detail).toBe("line 6: pdq_quality: given without a pdq hash");
    expect(failed(items[7]).detail).toMatch(/^line 9: submission_id: must be/);
    for (const [i, item] of items.entries()) expect(item.original.toString()).toBe(rows[i]);
  });

  it("fails an overlong row without holding it, and goes on", async () => {
    const long = `${randomHex(16)},${"x".repeat(5000)}`;
    const items = await read(`md5,series\n${long}\n${randomHex(16)},short\n`, { size: 64, maxLineBytes: 1024 });
    expect(summary(items)).toEqual(["MALFORMED_CSV", "ok"]);
    expect(failed(items[0]).detail).toMatch(/longer than 1024 bytes/);
    expect(items[0]?.original.length).toBe(1024);
  });

  it("refuses a bad submissionIdPrefix at once", () => {
    expect(() => readCsvDrafts(chunked("md5\n"), { submissionIdPrefix: "bad prefix" })).toThrow(ValidationError);
  });
});
