/**
 * Test-side helpers of the hostile-input suite (issue 7): time budgets (hang detectors, not
 * benchmarks), heap measurement, isolated runs in a worker with a hard heap limit, and the checks
 * every parser result must pass. Input generators are in fuzz.ts (re-exported here). Every
 * failure message carries the input (hex or a prefix of it) that triggered it.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { REASON_CODES } from "../../services/shared/errors.ts";
import type { DraftItem } from "../../services/ingest/formats/common.ts";
import { show } from "./fuzz.ts";

export * from "./fuzz.ts";

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

// ---- isolation: a child process with a hard heap limit and a deadline -------------------------

export interface IsolatedResult {
  readonly result: unknown;
  readonly ms: number;
  readonly peakHeapBytes: number;
}

/**
 * Runs `scenarios[name]` (scenarios.ts) in a child process (isolated-runner.ts) started with
 * --max-old-space-size=`maxOldMb`, and kills it after `timeoutMs`. A regression that allocates
 * without bound then fails this test within seconds ("exited with code 134"), instead of taking
 * the test worker down after minutes; a hang fails as a timeout. (A worker thread's
 * resourceLimits is not enough: V8 can still abort the whole process on a huge allocation.)
 */
export function runIsolated(name: string, opts: { maxOldMb: number; timeoutMs: number }): Promise<IsolatedResult> {
  const runner = fileURLToPath(new URL("./isolated-runner.ts", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${opts.maxOldMb}`, "--import", "tsx", runner, name], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trimEnd().split("\n").pop() ?? "";
      let msg: ({ error?: string } & IsolatedResult) | undefined;
      try {
        msg = JSON.parse(last) as { error?: string } & IsolatedResult;
      } catch {
        msg = undefined;
      }
      if (signal === "SIGKILL") reject(new Error(`scenario ${name}: no answer within ${opts.timeoutMs} ms (a hang?)`));
      else if (!msg) reject(new Error(`scenario ${name} exited with code ${code} (out of its ${opts.maxOldMb} MB heap?): ${stderr.slice(-1500)}`));
      else if (msg.error) reject(new Error(`scenario ${name} threw: ${msg.error}`));
      else resolve(msg);
    });
  });
}
