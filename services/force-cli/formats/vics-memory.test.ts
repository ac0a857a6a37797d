/**
 * Bounded memory: a synthetic VICS export of 200k media items, generated on the fly (never held
 * whole), is read with a heap growth far below what holding the file or its items would take, in
 * one pass and in two (case fields after the Media array, read from a re-openable source).
 * A sanity check, not a benchmark: there is no timing assertion.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readVicsDrafts } from "./vics.ts";

const ITEMS = 200_000;
const CHUNK = 64 * 1024;
const MAX_HEAP_GROWTH = 100 * 1024 * 1024;

/** Random hex from a pool refilled by crypto.randomBytes: synthetic digests, cheaply. */
function hexSource(): (bytes: number) => string {
  let pool = Buffer.alloc(0);
  let offset = 0;
  return (bytes) => {
    if (offset + bytes > pool.length) {
      pool = randomBytes(CHUNK);
      offset = 0;
    }
    const s = pool.toString("hex", offset, offset + bytes);
    offset += bytes;
    return s;
  };
}

/**
 * A VICS 2.0 Cases export, one case holding every media item, produced chunk by chunk; its case
 * fields before the Media array, or after it (`late`), as some tools write them.
 */
function* syntheticVics(items: number, late = false): Generator<Buffer> {
  const hex = hexSource();
  let text =
    '{"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases",' +
    (late ? '"value":[{"Media":[' : '"value":[{"CaseID":"synthetic-case","CaseNumber":"SYN-BIG-1","Media":[');
  for (let i = 0; i < items; i++) {
    const media = {
      MediaID: i + 1,
      Category: i % 5,
      MD5: hex(16).toUpperCase(),
      SHA1: hex(20).toUpperCase(),
      PhotoDNA: i % 10 === 0 ? hex(144) : null,
      IsDistributed: i % 2 === 0 ? "true" : false,
      MediaSize: 1000 + i,
      MediaFiles: [{ FileName: `synthetic-${i}.jpg` }],
    };
    text += (i === 0 ? "" : ",") + JSON.stringify(media);
    if (text.length >= CHUNK) {
      yield Buffer.from(text, "utf8");
      text = "";
    }
  }
  yield Buffer.from(`${text}]${late ? ',"CaseID":"synthetic-case","CaseNumber":"SYN-BIG-1"' : ""}}]}`, "utf8");
}

/** Reads `source` to the end, checking order and sampling the heap; counts ok items, failed ones and those with the case's caseRef. */
async function readCounting(source: Parameters<typeof readVicsDrafts>[0]) {
  const baseline = process.memoryUsage().heapUsed;
  let peak = 0;
  let ok = 0;
  let failed = 0;
  let lastIndex = -1;
  let caseRefs = 0;
  for await (const item of readVicsDrafts(source, { submissionIdPrefix: "force-a:big:" })) {
    if (item.ok) {
      ok++;
      if (item.draft.lawEnforcement.caseRef === "SYN-BIG-1") caseRefs++;
    } else failed++;
    expect(item.index).toBe(lastIndex + 1);
    lastIndex = item.index;
    if ((item.index & 1023) === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
  }
  return { counts: { ok, failed, caseRefs }, peak };
}

describe("readVicsDrafts memory", () => {
  it(`reads ${ITEMS} media items in bounded memory`, { timeout: 180_000 }, async () => {
    const { counts, peak } = await readCounting(Readable.from(syntheticVics(ITEMS)));
    expect(counts).toEqual({ ok: ITEMS, failed: 0, caseRefs: ITEMS });
    expect(peak).toBeLessThan(MAX_HEAP_GROWTH);
  });

  it(`reads ${ITEMS} media items whose CaseNumber follows them, in two passes, in bounded memory`, { timeout: 180_000 }, async () => {
    const { counts, peak } = await readCounting(() => Readable.from(syntheticVics(ITEMS, true)));
    expect(counts).toEqual({ ok: ITEMS, failed: 0, caseRefs: ITEMS });
    expect(peak).toBeLessThan(MAX_HEAP_GROWTH);
  });
});
