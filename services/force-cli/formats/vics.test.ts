import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../shared/errors.ts";
import { randomHex } from "../../../test/support/fixtures.ts";
import type { DraftItem } from "./common.ts";
import { readVicsDrafts, VICS_TO_UK } from "./vics.ts";

const V1 = { "odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media" };
const V1_CASES = { "odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases" };
const V2 = { "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media" };
const V2_CASES = { "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases" };

type Media = Record<string, unknown>;

/** A synthetic VICS media item: random digests only, upper-case as exporters write them. */
function media(id: number, extra: Media = {}): Media {
  return {
    MediaID: id,
    Category: 1,
    MD5: randomHex(16).toUpperCase(),
    SHA1: randomHex(20).toUpperCase(),
    MediaSize: 2835,
    IsDistributed: false,
    MediaFiles: [{ FileName: `synthetic-${id}.jpg`, FilePath: "C:\\synthetic\\" }],
    ...extra,
  };
}

/** Bytes in small chunks, so tokens, keys and UTF-8 sequences straddle chunk boundaries. */
function chunked(text: string | Buffer, size = 7): Readable {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

async function read(text: string | Buffer, prefix = "force-a:file-1:", size = 7, maxItemChars?: number): Promise<DraftItem[]> {
  const out: DraftItem[] = [];
  const opts = maxItemChars === undefined ? { submissionIdPrefix: prefix } : { submissionIdPrefix: prefix, maxItemChars };
  for await (const item of readVicsDrafts(chunked(text, size), opts)) out.push(item);
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

describe("readVicsDrafts: shapes and versions", () => {
  it("reads the VICS 1.x Media form", async () => {
    const m = [media(1), media(2, { SHA256: randomHex(32).toUpperCase() })];
    const items = await read(JSON.stringify({ ...V1, value: m }));
    expect(items).toHaveLength(2);
    const a = ok(items[0]);
    expect(a.index).toBe(0);
    expect(a.draft.submissionId).toBe("force-a:file-1:1");
    expect(a.draft.hashes).toEqual([
      { alg: "md5", value: String(m[0]?.["MD5"]).toLowerCase(), quality: null },
      { alg: "sha1", value: String(m[0]?.["SHA1"]).toLowerCase(), quality: null },
    ]);
    expect(a.draft.grade).toEqual({ uk: "UNGRADED", ics: null, vics: { profile: "vics-1.x", code: 1 } });
    expect(a.draft).toMatchObject({ op: "ASSERT", contentType: "image", gradingStatus: "indicative" });
    expect(a.draft.lawEnforcement.isDistributed).toBe(false);
    expect(JSON.parse(a.original.toString())).toEqual(m[0]);
    expect(ok(items[1]).draft.hashes.map((h) => h.alg)).toEqual(["md5", "sha1", "sha256"]);
  });

  it("reads the VICS 2.0 Media form", async () => {
    const items = await read(JSON.stringify({ ...V2, value: [media(7)] }));
    expect(ok(items[0]).draft.grade.vics).toEqual({ profile: "vics-2.0", code: 1 });
    expect(ok(items[0]).draft.submissionId).toBe("force-a:file-1:7");
  });

  it("reads the Cases form of both versions, with case-level fields as caseRef", async () => {
    for (const [head, profile] of [
      [V1_CASES, "vics-1.x"],
      [V2_CASES, "vics-2.0"],
    ] as const) {
      const doc = {
        ...head,
        value: [
          { CaseID: "0b9b6c1e-synthetic", CaseNumber: "SYN-CASE-42", Contact: { Name: "synthetic" }, Media: [media(1), media(2)] },
          { CaseID: "case-two", Media: [media(1)] },
          { CaseNumber: "empty-case", Media: [] },
        ],
      };
      const items = await read(JSON.stringify(doc));
      expect(items.map((i) => i.index)).toEqual([0, 1, 2]);
      expect(items.map((i) => ok(i).draft.lawEnforcement.caseRef)).toEqual(["SYN-CASE-42", "SYN-CASE-42", "case-two"]);
      expect(items.map((i) => ok(i).draft.submissionId)).toEqual(["force-a:file-1:1", "force-a:file-1:2", "force-a:file-1:c1.1"]);
      expect(ok(items[0]).draft.grade.vics?.profile).toBe(profile);
    }
  });

  it("matches property names case-insensitively", async () => {
    const md5 = randomHex(16);
    const doc = `{"ODATA.METADATA": "x#Media", "Value": [{"mediaid": 3, "md5": "${md5}", "Sha1": "${randomHex(20)}", "CATEGORY": "3", "isdistributed": "True"}]}`;
    const d = ok((await read(doc))[0]).draft;
    expect(d.submissionId).toBe("force-a:file-1:3");
    expect(d.hashes[0]).toEqual({ alg: "md5", value: md5, quality: null });
    expect(d.grade).toEqual({ uk: "PROHIBITED_NONPHOTO", ics: null, vics: { profile: "vics-1.x", code: 3 } });
    expect(d.lawEnforcement.isDistributed).toBe(true);
    const cases = `{"@odata.context": "x#Cases", "VALUE": [{"casenumber": "C-1", "MEDIA": [{"MD5": "${md5}"}]}]}`;
    expect(ok((await read(cases))[0]).draft.lawEnforcement.caseRef).toBe("C-1");
  });

  it("reads from any async iterable of Buffers, not only a Readable", async () => {
    const text = JSON.stringify({ ...V2, value: [media(1), media(2)] });
    async function* source() {
      yield Buffer.from(text.slice(0, 10));
      yield Buffer.from(text.slice(10));
    }
    const items: DraftItem[] = [];
    for await (const item of readVicsDrafts(source(), { submissionIdPrefix: "p:" })) items.push(item);
    expect(items.map((i) => i.ok)).toEqual([true, true]);
  });

  it("keeps multi-byte UTF-8 split across chunks intact, and skips a BOM", async () => {
    const series = "Sériés ✓ 𝔖ynthetic";
    const text = JSON.stringify({ ...V2, value: [media(1, { Series: series })] });
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]);
    const items = await read(body, "p:", 1);
    expect(ok(items[0]).draft.lawEnforcement.series).toBe(series);
  });
});

describe("readVicsDrafts: fields", () => {
  it("maps every VICS category as documented, and keeps the code", async () => {
    const cats: unknown[] = [0, 1, 2, 3, 4, null, "2", " 4 ", ""];
    const items = await read(JSON.stringify({ ...V2, value: cats.map((c, i) => media(i, { Category: c })) }));
    const grades = items.map((i) => ok(i).draft.grade);
    expect(grades.map((g) => g.uk)).toEqual([
      "NON_INDECENT",
      "UNGRADED",
      "UNGRADED",
      "PROHIBITED_NONPHOTO",
      "NON_INDECENT",
      "UNGRADED",
      "UNGRADED",
      "NON_INDECENT",
      "UNGRADED",
    ]);
    expect(grades.map((g) => g.vics?.code ?? null)).toEqual([0, 1, 2, 3, 4, null, 2, 4, null]);
    expect(VICS_TO_UK).toEqual({ 0: "NON_INDECENT", 1: "UNGRADED", 2: "UNGRADED", 3: "PROHIBITED_NONPHOTO", 4: "NON_INDECENT" });
  });

  it("treats a missing Category as ungraded", async () => {
    const m = media(1);
    delete m["Category"];
    expect(ok((await read(JSON.stringify({ ...V1, value: [m] })))[0]).draft.grade).toEqual({ uk: "UNGRADED", ics: null, vics: null });
  });

  it("refuses an unknown category but goes on", async () => {
    const items = await read(
      JSON.stringify({ ...V2, value: [media(1, { Category: 7 }), media(2, { Category: "CSAM" }), media(3, { Category: 1.5 }), media(4)] }),
    );
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["INVALID_CATEGORY", "INVALID_CATEGORY", "INVALID_CATEGORY", "ok"]);
    expect(failed(items[0]).detail).toMatch(/^Category: 7 is not a VICS category/);
  });

  it("lets a UK category on the media win over the VICS mapping, keeping the VICS code", async () => {
    const items = await read(
      JSON.stringify({
        ...V2,
        value: [
          media(1, { Category: 1, UKCategory: "A" }),
          media(2, { Category: 1, Category_UK: "cat b" }),
          media(3, { Category: null, ukcategory: "C" }),
          media(4, { Category: 1, UKCategory: "" }),
          media(5, { Category: 1, UKCategory: "Z" }),
        ],
      }),
    );
    expect(items.slice(0, 4).map((i) => ok(i).draft.grade)).toEqual([
      { uk: "A", ics: null, vics: { profile: "vics-2.0", code: 1 } },
      { uk: "B", ics: null, vics: { profile: "vics-2.0", code: 1 } },
      { uk: "C", ics: null, vics: null },
      { uk: "UNGRADED", ics: null, vics: { profile: "vics-2.0", code: 1 } },
    ]);
    expect(failed(items[4]).reason).toBe("INVALID_CATEGORY");
  });

  it("reads flags as real booleans or as strings and numbers", async () => {
    const forms: [unknown, boolean | null][] = [
      [true, true],
      [false, false],
      ["true", true],
      ["True", true],
      ["FALSE", false],
      ["1", true],
      ["0", false],
      [1, true],
      [0, false],
      [null, null],
      ["", null],
    ];
    const items = await read(
      JSON.stringify({ ...V1, value: forms.map(([v], i) => media(i, { IsDistributed: v, VictimIdentified: v, OffenderIdentified: v })) }),
    );
    items.forEach((item, i) => {
      const le = ok(item).draft.lawEnforcement;
      const want = forms[i]?.[1];
      expect([le.isDistributed, le.victimIdentified, le.offenderIdentified]).toEqual([want, want, want]);
    });
  });

  it("refuses a flag it cannot read", async () => {
    const items = await read(JSON.stringify({ ...V1, value: [media(1, { VictimIdentified: "maybe" }), media(2, { IsDistributed: 2 })] }));
    expect(items.map((i) => !i.ok && i.reason)).toEqual(["INVALID_FIELD", "INVALID_FIELD"]);
    expect(failed(items[0]).detail).toMatch(/^VictimIdentified: not a boolean/);
  });

  it("reads PhotoDNA as base64 or hex, ignoring a null one", async () => {
    const pdna = randomBytes(144);
    const items = await read(
      JSON.stringify({
        ...V2,
        value: [
          media(1, { PhotoDNA: pdna.toString("base64") }),
          media(2, { PhotoDNA: pdna.toString("hex").toUpperCase() }),
          media(3, { PhotoDNA: null }),
        ],
      }),
    );
    const p1 = ok(items[0]).draft.hashes.find((h) => h.alg === "photodna");
    const p2 = ok(items[1]).draft.hashes.find((h) => h.alg === "photodna");
    expect(p1).toEqual({ alg: "photodna", value: pdna.toString("base64"), quality: null });
    expect(p2).toEqual(p1);
    expect(ok(items[2]).draft.hashes.map((h) => h.alg)).toEqual(["md5", "sha1"]);
  });

  it("reads PDQ with its quality", async () => {
    const pdq = randomHex(32);
    const items = await read(
      JSON.stringify({
        ...V2,
        value: [
          media(1, { PDQ: pdq, PDQQuality: 93 }),
          media(2, { Pdq: pdq.toUpperCase(), PDQ_Quality: "70" }),
          media(3, { Pdq: pdq, PdqQuality: 140 }),
        ],
      }),
    );
    expect(ok(items[0]).draft.hashes).toContainEqual({ alg: "pdq", value: pdq, quality: 93 });
    expect(ok(items[1]).draft.hashes).toContainEqual({ alg: "pdq", value: pdq, quality: 70 });
    expect(failed(items[2]).reason).toBe("INVALID_HASH");
  });

  it("takes Series, Grader/GraderName and a case's CaseID when it has no CaseNumber", async () => {
    const items = await read(
      JSON.stringify({
        ...V1_CASES,
        value: [
          { CaseID: 12345, Media: [media(1, { Series: 77, Grader: "grader-7" }), media(2, { Series: "  ", GraderName: "grader-9" })] },
        ],
      }),
    );
    expect(ok(items[0]).draft.lawEnforcement).toMatchObject({ caseRef: "12345", series: "77", graderRef: "grader-7" });
    expect(ok(items[1]).draft.lawEnforcement).toMatchObject({ caseRef: "12345", series: null, graderRef: "grader-9" });
  });

  it("makes a bad media item a failed item and goes on", async () => {
    const bad = media(2, { MD5: "ABC123" });
    const items = await read(JSON.stringify({ ...V1, value: [media(1), bad, media(3, { SHA1: `${randomHex(19)}zz` }), media(4)] }));
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "INVALID_HASH", "INVALID_HASH", "ok"]);
    const f = failed(items[1]);
    expect(f.index).toBe(1);
    expect(f.detail).toMatch(/^MD5: md5 must be 32 hex characters, got 6/);
    expect(JSON.parse(f.original.toString())).toEqual(bad);
    expect(ok(items[3]).draft.submissionId).toBe("force-a:file-1:4");
  });

  it("refuses a media item with no hash", async () => {
    const items = await read(JSON.stringify({ ...V2, value: [{ MediaID: 1, Category: 1, MD5: null, SHA1: "" }] }));
    expect(failed(items[0]).reason).toBe("NO_HASHES");
  });

  it("refuses a property given twice in different spellings", async () => {
    const items = await read(`{"@odata.context":"x","value":[{"MD5":"${randomHex(16)}","md5":"${randomHex(16)}"}]}`);
    expect(failed(items[0])).toMatchObject({ reason: "INVALID_FIELD" });
  });

  it("derives stable ids when MediaID is missing or unusable", async () => {
    const noId = media(0);
    delete noId["MediaID"];
    const doc = JSON.stringify({ ...V2, value: [noId, media(0, { MediaID: "{3F2504E0 4F89}" })] });
    const first = await read(doc);
    const again = await read(doc, "force-a:file-1:", 13);
    const ids = first.map((i) => ok(i).draft.submissionId);
    expect(ids[0]).toMatch(/^force-a:file-1:h-[0-9a-f]{32}$/);
    expect(ids[1]).toMatch(/^force-a:file-1:m-[0-9a-f]{32}$/);
    expect(again.map((i) => ok(i).draft.submissionId)).toEqual(ids);
  });

  it("keeps derived ids within 128 characters under the longest prefix", async () => {
    const prefix = `${"p".repeat(95)}:`;
    const noId = media(0);
    delete noId["MediaID"];
    const doc = JSON.stringify({ ...V2_CASES, value: [{ Media: [] }, { Media: [noId, media(0, { MediaID: "x".repeat(40) })] }] });
    const ids = (await read(doc, prefix, 4096)).map((i) => ok(i).draft.submissionId);
    expect(ids[0]).toMatch(new RegExp(`^${prefix}c1\\.h-[0-9a-f]{27}$`));
    expect(ids[1]).toMatch(new RegExp(`^${prefix}c1\\.m-[0-9a-f]{27}$`));
    expect(ids.map((id) => id.length)).toEqual([128, 128]);
  });

  it("does not let a __proto__ property do anything", async () => {
    const md5 = randomHex(16);
    const items = await read(`{"odata.metadata":"x","value":[{"__proto__":{"MD5":"${randomHex(16)}"},"MD5":"${md5}","MediaID":1}]}`);
    expect(ok(items[0]).draft.hashes).toEqual([{ alg: "md5", value: md5, quality: null }]);
    expect(({} as Record<string, unknown>)["MD5"]).toBeUndefined();
  });

  it("refuses an oversized media item but goes on", async () => {
    const items = await read(JSON.stringify({ ...V2, value: [media(1, { Comments: "x".repeat(5000) }), media(2)] }), "p:", 512, 2000);
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["MALFORMED_VICS", "ok"]);
  });

  it("refuses a non-object element but goes on", async () => {
    const items = await read(JSON.stringify({ ...V2, value: [17, media(2), [1, 2]] }));
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["MALFORMED_VICS", "ok", "MALFORMED_VICS"]);
    expect(items[0]?.original.toString()).toBe("17");
  });
});

describe("readVicsDrafts: malformed files", () => {
  it("yields the items before a truncation, then one MALFORMED_VICS, and stops", async () => {
    const text = JSON.stringify({ ...V2, value: [media(1), media(2), media(3)] });
    const cut = text.slice(0, text.lastIndexOf("MD5") + 10);
    const items = await read(cut);
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "ok", "MALFORMED_VICS"]);
    const f = failed(items[2]);
    expect(f.index).toBe(2);
    expect(f.detail).toMatch(/truncated|expected/);
    expect(cut.endsWith(f.original.toString())).toBe(true);
  });

  it("says MALFORMED_VICS for a file cut right after an item", async () => {
    const text = JSON.stringify({ ...V2, value: [media(1)] });
    const items = await read(text.slice(0, -2));
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "MALFORMED_VICS"]);
  });

  it("says MALFORMED_VICS for bad syntax mid-file, after the good items", async () => {
    const text = `{"@odata.context":"x#Media","value":[${JSON.stringify(media(1))},{"MD5": nope}, ${JSON.stringify(media(3))}]}`;
    const items = await read(text);
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "MALFORMED_VICS"]);
  });

  it("says MALFORMED_VICS for files of the wrong shape", async () => {
    const m = JSON.stringify(media(1));
    const cases: [string, RegExp][] = [
      ["", /expected a value|end of file/],
      ["   ", /expected a value|end of file/],
      ["not json", /not valid JSON/],
      [`[${m}]`, /top level must be a JSON object/],
      [`{"value": [${m}]}`, /odata\.metadata.*@odata\.context/],
      [`{"odata.metadata": "x"}`, /no "value" array/],
      [`{"odata.metadata": "x", "value": {}}`, /"value" must be an array/],
      [`{"odata.metadata": 5, "value": []}`, /must be a string/],
      [`{"odata.metadata": "x", "value": []} {}`, /./],
    ];
    for (const [text, detail] of cases) {
      const items = await read(text);
      expect(items, text).toHaveLength(1);
      const f = failed(items[0]);
      expect(f.reason, text).toBe("MALFORMED_VICS");
      expect(f.detail, text).toMatch(detail);
    }
  });

  it("yields nothing for an empty value array", async () => {
    expect(await read(JSON.stringify({ ...V1, value: [] }))).toEqual([]);
    expect(await read(JSON.stringify({ ...V1_CASES, value: [{ CaseID: "x", Media: [] }] }))).toEqual([]);
  });

  it("refuses a bad submissionIdPrefix at once", () => {
    for (const prefix of ["", "has space", "x".repeat(97)]) {
      expect(() => readVicsDrafts(chunked("{}"), { submissionIdPrefix: prefix })).toThrow(ValidationError);
    }
  });
});

/** Reads `text` through a re-openable source (two passes), as the CLI reads a file path. */
async function readFile(text: string | Buffer, opts: { partial?: boolean; size?: number } = {}): Promise<DraftItem[]> {
  const out: DraftItem[] = [];
  let opened = 0;
  const open = () => {
    opened++;
    return chunked(text, opts.size ?? 7);
  };
  for await (const item of readVicsDrafts(open, { submissionIdPrefix: "force-a:file-1:", partial: opts.partial ?? false })) out.push(item);
  expect(opened).toBeLessThanOrEqual(2);
  return out;
}

describe("readVicsDrafts: exports as forensic tools write them", () => {
  it("takes hashes from AlternativeHashes (VICS 1.3) as well as the top-level fields, ignoring and naming unknown ones", async () => {
    const md5 = randomHex(16);
    const sha1 = randomHex(20);
    const sha256 = randomHex(32);
    const pdq = randomHex(32);
    const pdna = randomBytes(144);
    const alt = (HashName: string, HashValue: unknown, extra: Media = {}) => ({ HashName, HashValue, ...extra });
    const doc = JSON.stringify({
      ...V1,
      value: [
        {
          MediaID: 1,
          Category: 1,
          MD5: md5.toUpperCase(),
          AlternativeHashes: [
            alt("SHA-1", sha1.toUpperCase()),
            alt("sha256", sha256),
            alt("PhotoDNA", pdna.toString("base64")),
            alt("PDQ", pdq, { Quality: 88 }),
            alt("SSDEEP", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C"),
            alt("MD5", md5), // the top-level value again: the same hash, taken once
            alt("TLSH", null),
          ],
        },
        media(2, { AlternativeHashes: [alt("MD5", randomHex(16))] }),
        { MediaID: 3, AlternativeHashes: [alt("SHA512", randomHex(64)), alt("ED2K", randomHex(16))] },
        media(4, { AlternativeHashes: { HashName: "SHA1", HashValue: sha1 } }),
        media(5, { AlternativeHashes: [alt("SHA256", "not-hex")] }),
        media(6, { AlternativeHashes: [{ HashValue: sha256 }] }),
        media(7, { PDQ: pdq, PDQQuality: 90, AlternativeHashes: [alt("Pdq", randomHex(32))] }),
        { MediaID: 8, AlternativeHashes: [alt("sha-1", sha1)] },
      ],
    });
    const items = await read(doc);
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual([
      "ok",
      "INVALID_HASH",
      "NO_HASHES",
      "INVALID_FIELD",
      "INVALID_HASH",
      "INVALID_FIELD",
      "INVALID_HASH",
      "ok",
    ]);
    const first = ok(items[0]);
    expect(first.draft.hashes).toEqual([
      { alg: "md5", value: md5, quality: null },
      { alg: "sha1", value: sha1, quality: null },
      { alg: "sha256", value: sha256, quality: null },
      { alg: "photodna", value: pdna.toString("base64"), quality: null },
      { alg: "pdq", value: pdq, quality: 88 },
    ]);
    expect(first.ignoredHashNames).toEqual(["SSDEEP"]);
    expect(failed(items[1]).detail).toMatch(/^AlternativeHashes\[0\] \(MD5\): md5 [0-9a-f]{32} conflicts with MD5 [0-9a-f]{32}/);
    expect(failed(items[2]).detail).toMatch(/AlternativeHashes holds only SHA512, ED2K/);
    expect(failed(items[4]).detail).toMatch(/^AlternativeHashes\[0\] \(SHA256\): sha256 must be hexadecimal/);
    expect(failed(items[6]).detail).toMatch(/conflicts with PDQ/);
    expect(ok(items[7]).draft.hashes).toEqual([{ alg: "sha1", value: sha1, quality: null }]);
    expect(ok(items[7]).ignoredHashNames).toBeUndefined();
  });

  it("makes an item whose MimeType or MediaType says video a video submission", async () => {
    const items = await read(
      JSON.stringify({
        ...V2,
        value: [
          media(1, { MimeType: "video/mp4" }),
          media(2, { MediaType: "Video" }),
          media(3, { MimeType: "VIDEO/X-MSVIDEO", MediaType: "video" }),
          media(4, { MimeType: "image/jpeg" }),
          media(5, { MimeType: "application/octet-stream" }),
          media(6),
          media(7, { MimeType: "video/mp4", MediaType: "Image" }),
          media(8, { MimeType: 4 }),
        ],
      }),
    );
    expect(items.map((i) => (i.ok ? i.draft.contentType : i.reason))).toEqual([
      "video",
      "video",
      "video",
      "image",
      "image",
      "image",
      "INVALID_FIELD",
      "INVALID_FIELD",
    ]);
    expect(failed(items[6]).detail).toMatch(/MediaType: "Image" says image but MimeType says video/);
  });

  it("applies case-level fields that come after the Media array to every item of the case, in two passes", async () => {
    const doc = JSON.stringify({
      ...V1_CASES,
      value: [
        { Media: [media(1), media(2)], CaseID: "case-id-1", CaseNumber: "SYN-LATE-1", Contact: { Name: "synthetic" } },
        { CaseID: "early-2", Media: [media(1)] },
        { CaseID: "early-3", Media: [media(1)], CaseNumber: "SYN-LATE-3" },
        { Media: [media(1)] },
      ],
    });
    const twice = await readFile(doc);
    expect(twice.map((i) => ok(i).draft.lawEnforcement.caseRef)).toEqual(["SYN-LATE-1", "SYN-LATE-1", "early-2", "SYN-LATE-3", null]);
    expect(twice.map((i) => ok(i).draft.submissionId)).toEqual([
      "force-a:file-1:1",
      "force-a:file-1:2",
      "force-a:file-1:c1.1",
      "force-a:file-1:c2.1",
      "force-a:file-1:c3.1",
    ]);
    // One pass (a stream that cannot be re-read) sees only the fields before Media.
    expect((await read(doc)).map((i) => ok(i).draft.lawEnforcement.caseRef)).toEqual([null, null, "early-2", "early-3", null]);
  });

  it("refuses each media item of a case that gives its CaseNumber or CaseID twice (INVALID_FIELD), before or after Media", async () => {
    const m = [media(1), media(2), media(3), media(4), media(5)];
    const cases = [
      `{"CaseNumber":"SYN-A","Case_Number":"SYN-B","Media":[${JSON.stringify(m[0])},${JSON.stringify(m[1])}]}`,
      `{"CaseNumber":"SYN-C","Media":[${JSON.stringify(m[2])}],"Contact":{"Name":"synthetic"}}`,
      `{"CaseID":"id-3","Media":[${JSON.stringify(m[3])}],"caseid":"id-3b"}`,
      `{"CaseNumber":"SYN-D","CaseNumber":"SYN-E","Media":[${JSON.stringify(m[4])}]}`,
    ];
    const doc = `{${JSON.stringify(V2_CASES).slice(1, -1)},"value":[${cases.join(",")}]}`;
    const summary = (items: DraftItem[]) => items.map((i) => (i.ok ? i.draft.lawEnforcement.caseRef : i.reason));

    const twice = await readFile(doc);
    expect(summary(twice)).toEqual(["INVALID_FIELD", "INVALID_FIELD", "SYN-C", "INVALID_FIELD", "INVALID_FIELD"]);
    expect(failed(twice[0]).detail).toBe(
      'case 0: CaseNumber given twice, as "CaseNumber" and "Case_Number": which case its media belong to is uncertain, ' +
        "so each of its media items is refused; export the case with one CaseNumber and at most one CaseID",
    );
    expect(JSON.parse(failed(twice[1]).original.toString())).toEqual(m[1]);
    expect(failed(twice[3]).detail).toMatch(/^case 2: CaseID given twice, as "CaseID" and "caseid": /);
    expect(failed(twice[4]).detail).toMatch(/^case 3: CaseNumber given twice: /);
    // One pass (a stream) sees the fields before Media only: the CaseID repeated after Media goes unseen.
    expect(summary(await read(doc))).toEqual(["INVALID_FIELD", "INVALID_FIELD", "SYN-C", "id-3", "INVALID_FIELD"]);
  });

  it("decodes UTF-16 LE and BE with a byte-order mark, and UTF-8 with one", async () => {
    const series = "Sériés ✓ 𝔖ynthetic";
    const text = `\uFEFF${JSON.stringify({ ...V2, value: [media(1, { Series: series }), media(2)] })}`;
    const le = Buffer.from(text, "utf16le");
    const be = Buffer.from(le).swap16();
    for (const body of [le, be, Buffer.from(text, "utf8")]) {
      for (const size of [1, 3, 7, 4096]) {
        const items = await read(body, "p:", size);
        expect(items.map((i) => (i.ok ? "ok" : i.detail))).toEqual(["ok", "ok"]);
        expect(ok(items[0]).draft.lawEnforcement.series).toBe(series);
      }
    }
  });

  it("refuses a file that is neither UTF-8 nor UTF-16 with a byte-order mark, naming the encoding problem", async () => {
    const text = JSON.stringify({ ...V2, value: [media(1, { Series: "Séries" })] });
    const latin1 = Buffer.from(text, "latin1");
    const cases: [Buffer, RegExp][] = [
      [latin1, new RegExp(`^not valid UTF-8: byte 0xe9 at offset ${latin1.indexOf(0xe9)} of the file; save the export as UTF-8`)],
      [Buffer.from(text, "utf16le"), /^the file looks like UTF-16 without a byte-order mark/],
      [Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le"), Buffer.from([0x00, 0xdc])]), /^not valid UTF-16LE/],
      [
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le").subarray(0, 41)]),
        /^file truncated.*ends inside a UTF-16LE character/,
      ],
      [Buffer.from(`\uFEFF${text}`, "utf8").subarray(0, 3 + text.indexOf("é") + 1), /^file truncated.*ends inside a UTF-8 character/],
    ];
    for (const [body, detail] of cases) {
      const items = await read(body, "p:", 5);
      const last = failed(items[items.length - 1]);
      expect(last.reason).toBe("MALFORMED_VICS");
      expect(last.detail).toMatch(detail);
      expect(last.detail).not.toMatch(/not valid JSON/);
    }
  });
});

describe("readVicsDrafts: a truncated export", () => {
  const text = JSON.stringify({ ...V2, value: [media(1), media(2), media(3)] });
  const cut = text.slice(0, text.lastIndexOf("MD5") + 10);

  it("is refused whole by default when the source can be read twice: one item, nothing else", async () => {
    const items = await readFile(cut);
    expect(items).toHaveLength(1);
    const f = failed(items[0]);
    expect(f).toMatchObject({ index: 0, reason: "MALFORMED_VICS" });
    expect(f.fileFault).toEqual({ truncated: true, atByte: cut.length, completeItems: 2, refusedWhole: true });
    expect(f.detail).toMatch(
      new RegExp(
        `^file truncated: it ends at byte ${cut.length}, after 2 complete media items: .*the file is refused whole; none of its 2`,
      ),
    );
  });

  it("yields the complete items and then says plainly that the file was truncated when partial", async () => {
    const items = await readFile(cut, { partial: true });
    expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok", "ok", "MALFORMED_VICS"]);
    expect(failed(items[2]).fileFault).toEqual({ truncated: true, atByte: cut.length, completeItems: 2, refusedWhole: false });
    // One pass over a stream is always partial.
    expect(failed((await read(cut))[2]).fileFault).toEqual({ truncated: true, atByte: cut.length, completeItems: 2, refusedWhole: false });
  });

  it("says a fault other than truncation is not one, and reads a whole file in two passes as in one", async () => {
    const bad = `{"@odata.context":"x#Media","value":[${JSON.stringify(media(1))},{"MD5": nope}, ${JSON.stringify(media(3))}]}`;
    const f = failed((await readFile(bad))[0]);
    expect(f.fileFault).toMatchObject({ truncated: false, completeItems: 1, refusedWhole: true });
    expect(f.detail).toMatch(/^not valid JSON/);
    const empty = failed((await readFile(""))[0]);
    expect(empty.fileFault).toMatchObject({ truncated: false, completeItems: 0 });
    expect((await readFile(text)).map((i) => (i.ok ? i.draft.submissionId : i.reason))).toEqual(
      (await read(text)).map((i) => (i.ok ? i.draft.submissionId : i.reason)),
    );
  });
});
