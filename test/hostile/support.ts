/**
 * Helpers of the hostile-input suite (issue 7): a seeded PRNG, byte mutators, time budgets (hang
 * detectors, not benchmarks), heap measurement, and the checks every parser result must pass.
 *
 * The seed is HOSTILE_SEED (a number) when set, else a fixed one, so a failure reproduces; every
 * failure message carries the input (hex or a prefix of it) that triggered it.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { Worker } from "node:worker_threads";
import { expect } from "vitest";
import { REASON_CODES } from "../../services/shared/errors.ts";
import type { DraftItem } from "../../services/ingest/formats/common.ts";

export const SEED = Number(process.env["HOSTILE_SEED"] ?? 0x5eed_0007);

/** mulberry32: small, fast, seeded; good enough to pick mutations. */
export function prng(seed: number = SEED): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;

export function int(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[int(rng, xs.length)] as T;
}

export function randomBuffer(rng: Rng, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = int(rng, 256);
  return b;
}

/** Bytes from a small alphabet, so random input gets past the first byte of a parser now and then. */
export function randomFrom(rng: Rng, alphabet: string | Buffer, length: number): Buffer {
  const a = typeof alphabet === "string" ? Buffer.from(alphabet, "latin1") : alphabet;
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = a[int(rng, a.length)] as number;
  return b;
}

/** Every prefix of `buf` (truncation at every position). */
export function* truncations(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) yield buf.subarray(0, i);
}

/** `buf` with one bit flipped, for every bit (or, with `rng`, one random bit per byte). */
export function* bitFlips(buf: Buffer, rng?: Rng): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) {
    const bits = rng ? [int(rng, 8)] : [0, 1, 2, 3, 4, 5, 6, 7];
    for (const bit of bits) {
      const copy = Buffer.from(buf);
      copy[i] = (copy[i] as number) ^ (1 << bit);
      yield copy;
    }
  }
}

/** `buf` with each byte in turn set to each of `values` (boundary bytes: 0x00, 0x7f, 0x80, 0xff...). */
export function* byteSets(buf: Buffer, values: readonly number[]): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) {
    for (const v of values) {
      if (buf[i] === v) continue;
      const copy = Buffer.from(buf);
      copy[i] = v;
      yield copy;
    }
  }
}

/** `buf` with `insert` spliced in at every position. */
export function* splices(buf: Buffer, insert: Buffer): Generator<Buffer> {
  for (let i = 0; i <= buf.length; i++) yield Buffer.concat([buf.subarray(0, i), insert, buf.subarray(i)]);
}

/** A few random edits (flip, set, delete, duplicate a span) of `buf`. */
export function havoc(rng: Rng, buf: Buffer, edits = 1 + int(rng, 4)): Buffer {
  let b = Buffer.from(buf);
  for (let e = 0; e < edits && b.length > 0; e++) {
    const at = int(rng, b.length);
    switch (int(rng, 5)) {
      case 0:
        b[at] = (b[at] as number) ^ (1 << int(rng, 8));
        break;
      case 1:
        b[at] = pick(rng, [0x00, 0x7f, 0x80, 0xff, 0x22, 0x5b, 0x7b, 0x2c, 0x0a, 0x0d]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(rng, 8)))]);
        break;
      case 3: {
        const len = 1 + int(rng, 16);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      default:
        b = b.subarray(0, at);
    }
  }
  return b;
}

/** Short printable description of a hostile input, for failure messages. */
export function show(input: Buffer | string): string {
  const b = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const head = b.subarray(0, 160);
  return `${b.length} bytes: hex ${head.toString("hex")}${b.length > head.length ? "…" : ""} | text ${JSON.stringify(head.toString("latin1"))}`;
}

/**
 * Runs a family of cases and fails if it takes longer than `budgetMs`: a hang detector with a
 * generous bound (the families take a fraction of it), not a benchmark.
 */
export async function withinBudget<T>(budgetMs: number, family: () => T | Promise<T>): Promise<T> {
  const start = performance.now();
  const result = await family();
  const took = performance.now() - start;
  expect(took, `case family took ${Math.round(took)} ms, budget ${budgetMs} ms (a hang?)`).toBeLessThan(budgetMs);
  return result;
}

let gcFn: (() => void) | undefined;

/** A full GC, so heap figures measure what is live (V8's gc, exposed at run time for this). */
export function gc(): void {
  if (!gcFn) {
    v8.setFlagsFromString("--expose-gc");
    gcFn = vm.runInNewContext("gc") as () => void;
  }
  gcFn();
}

/** Tracks the peak of heapUsed above a baseline taken after a full GC; call sample() often. */
export class HeapWatch {
  private readonly baseline: number;
  peak = 0;

  constructor() {
    gc();
    this.baseline = process.memoryUsage().heapUsed;
  }

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage().heapUsed - this.baseline);
  }

  /** Live growth after a full GC (what the run kept). */
  retained(): number {
    gc();
    return process.memoryUsage().heapUsed - this.baseline;
  }
}

export const MB = 1024 * 1024;

const REASONS: ReadonlySet<string> = new Set(REASON_CODES);

/**
 * A rejection's reason must be one of REASON_CODES and not INTERNAL (which the readers give an
 * error they did not expect: a bug), with a detail and its original bytes.
 */
export function expectRejection(item: { reason: string; detail: string; original: unknown }, input: Buffer | string, allowed?: readonly string[]): void {
  const where = `${item.reason}: ${item.detail.slice(0, 200)} — input ${show(input)}`;
  expect(REASONS.has(item.reason), `reason not in REASON_CODES: ${where}`).toBe(true);
  expect(item.reason, `INTERNAL means an unexpected error: ${where}`).not.toBe("INTERNAL");
  if (allowed) expect(allowed, `unexpected reason: ${where}`).toContain(item.reason);
  expect(typeof item.detail === "string" && item.detail.length > 0, `no detail: ${where}`).toBe(true);
  expect(Buffer.isBuffer(item.original), `original is not a Buffer: ${where}`).toBe(true);
}

/** What every stream of DraftItems must satisfy: indexes 0, 1, 2... and reasoned rejections. */
export function expectDraftItems(items: readonly DraftItem[], input: Buffer | string, allowed?: readonly string[]): void {
  items.forEach((item, i) => {
    expect(item.index, `index ${item.index} at position ${i} — input ${show(input)}`).toBe(i);
    if (!item.ok) expectRejection(item, input, allowed);
    else expect(Buffer.isBuffer(item.original)).toBe(true);
  });
}

/** Chunks of `buf` cut at random places (1 to `max` bytes), so tokens and UTF-8 sequences straddle them. */
export function randomChunks(rng: Rng, buf: Buffer, max = 64): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + int(rng, max);
    parts.push(buf.subarray(i, i + n));
    i += n;
  }
  return parts;
}

export async function* sourceOf(parts: Iterable<Buffer | string>, onChunk?: () => void): AsyncGenerator<Buffer> {
  for (const p of parts) {
    onChunk?.();
    yield typeof p === "string" ? Buffer.from(p, "utf8") : p;
  }
}

export async function collect<T>(it: AsyncIterable<T>, each?: (item: T) => void): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    each?.(x);
    out.push(x);
  }
  return out;
}

// ---- isolation: a worker with a hard heap limit and a deadline ---------------------------------

export interface IsolatedResult {
  readonly result: unknown;
  readonly ms: number;
  readonly peakHeapBytes: number;
}

/**
 * Runs `scenarios[name]()` from test/hostile/scenarios.ts in a worker thread whose old generation
 * is capped at `maxOldMb`, and kills it after `timeoutMs`. A regression that allocates without
 * bound then fails this test as ERR_WORKER_OUT_OF_MEMORY within seconds, instead of taking the
 * test process down after minutes of swapping; a hang fails as a timeout.
 */
export function runIsolated(name: string, opts: { maxOldMb: number; timeoutMs: number }): Promise<IsolatedResult> {
  const scenarios = new URL("./scenarios.ts", import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    (async () => {
      (await import("tsx/esm/api")).register();
      const { scenarios } = await import(workerData.scenarios);
      let peak = 0;
      const base = process.memoryUsage().heapUsed;
      const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().heapUsed - base); }, 5);
      const start = performance.now();
      const result = await scenarios[workerData.name]((n) => { peak = Math.max(peak, process.memoryUsage().heapUsed - base); });
      clearInterval(timer);
      parentPort.postMessage({ result, ms: performance.now() - start, peakHeapBytes: peak });
    })().catch((err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, {
      eval: true,
      workerData: { scenarios, name },
      resourceLimits: { maxOldGenerationSizeMb: opts.maxOldMb },
    });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`scenario ${name}: no answer within ${opts.timeoutMs} ms (a hang?)`));
    }, opts.timeoutMs);
    worker.once("message", (msg: { error?: string } & IsolatedResult) => {
      clearTimeout(timer);
      void worker.terminate();
      if (msg.error) reject(new Error(`scenario ${name} threw: ${msg.error}`));
      else resolve(msg);
    });
    worker.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`scenario ${name} died (${(err as NodeJS.ErrnoException).code ?? ""}): ${err.message}`));
    });
  });
}
