/**
 * Bounded memory: what the reader holds must not grow with the file. A child process (run with
 * --expose-gc, so every sample is what is live after a full collection, not garbage) reads a
 * generated VICS export twice over, as the CLI reads a file (scan pass, then items pass), and
 * samples the heap plus the memory outside it (Buffers) as the source is read; the peak for 4N
 * items must be within a small margin of the peak for N items. Holding the items, their drafts or
 * their originals (hundreds of bytes each) would add megabytes over the 3N extra items. Both shapes
 * are read: the Media form (every item an element of "value", which the scan must not build) and
 * the Cases form with its CaseNumber after the Media array (the scan records it, the items pass
 * applies it to every item).
 */
import { execFile } from "node:child_process";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const N = 2_500;
/** Allowed growth of the peak live memory from N to 4N items: far below 3N items held (megabytes). */
const MAX_GROWTH_BYTES = 1024 * 1024;

const READER = pathToFileURL(new URL("./vics.ts", import.meta.url).pathname).href;
const EXPORT = pathToFileURL(new URL("../../../test/support/vics-export.ts", import.meta.url).pathname).href;

/** Runs in the child: reads `items` items of `form` in two passes, printing counts and the peak live memory as JSON. */
const CHILD = `
import { Readable } from "node:stream";
const { readVicsDrafts } = await import(${JSON.stringify(READER)});
const { syntheticVicsExport, SYNTHETIC_CASE_NUMBER } = await import(${JSON.stringify(EXPORT)});
const [items, form] = [Number(process.argv[1]), process.argv[2]];
let peak = 0;
let chunks = 0;
const sample = () => {
  globalThis.gc();
  const m = process.memoryUsage();
  peak = Math.max(peak, m.heapUsed + m.external);
};
function* sampled() {
  for (const chunk of syntheticVicsExport({ items, form, late: true, chunkBytes: 16 * 1024 })) {
    if (++chunks % 48 === 0) sample();
    yield chunk;
  }
}
const counts = { ok: 0, failed: 0, caseRefs: 0, opened: 0 };
const open = () => { counts.opened++; return Readable.from(sampled()); };
let next = 0;
for await (const item of readVicsDrafts(open, { submissionIdPrefix: "force-a:big:" })) {
  if (item.index !== next++) throw new Error("item " + item.index + " out of order");
  if (!item.ok) { counts.failed++; continue; }
  counts.ok++;
  if (item.draft.lawEnforcement.caseRef === SYNTHETIC_CASE_NUMBER) counts.caseRefs++;
}
sample();
process.stdout.write(JSON.stringify({ counts, peak }));
`;

async function readInChild(items: number, form: "media" | "cases") {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--expose-gc", "--input-type=module", "--eval", CHILD, String(items), form],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as { counts: { ok: number; failed: number; caseRefs: number; opened: number }; peak: number };
}

describe("readVicsDrafts memory", () => {
  it.concurrent.each(["media", "cases"] as const)(
    "keeps live memory flat from %s-form exports of N to 4N items, in two passes",
    async (form) => {
      const [small, large] = await Promise.all([readInChild(N, form), readInChild(4 * N, form)]);
      const caseRefs = (n: number) => (form === "cases" ? n : 0);
      expect(small.counts).toEqual({ ok: N, failed: 0, caseRefs: caseRefs(N), opened: 2 });
      expect(large.counts).toEqual({ ok: 4 * N, failed: 0, caseRefs: caseRefs(4 * N), opened: 2 });
      expect(large.peak - small.peak, `peak live memory ${small.peak} bytes for ${N} items, ${large.peak} for ${4 * N}`).toBeLessThan(
        MAX_GROWTH_BYTES,
      );
    },
  );
});
