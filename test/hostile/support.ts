/**
 * Test-side helpers of the hostile-input suite: time budgets (hang detectors, not
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
import type { DraftItem } from "../../services/force-cli/formats/common.ts";
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

/** Fails with the input that caused it; the message is only built on failure (these run per item, thousands of times). */
export function fail(message: string, input: Buffer | string): never {
  throw new Error(`${message} — input ${show(input)}`);
}

/**
 * A rejection's reason must be one of REASON_CODES and not INTERNAL (which the readers give an
 * error they did not expect: a bug), with a detail and its original bytes.
 */
export function expectRejection(
  item: { reason: string; detail: string; original: unknown },
  input: Buffer | string,
  allowed?: readonly string[],
): void {
  const what = (): string => `${item.reason}: ${String(item.detail).slice(0, 200)}`;
  if (!REASONS.has(item.reason)) fail(`reason not in REASON_CODES: ${what()}`, input);
  if (item.reason === "INTERNAL") fail(`INTERNAL means an unexpected error: ${what()}`, input);
  if (allowed && !allowed.includes(item.reason)) fail(`unexpected reason (allowed: ${allowed.join(", ")}): ${what()}`, input);
  if (typeof item.detail !== "string" || item.detail.length === 0) fail(`no detail: ${what()}`, input);
  if (!Buffer.isBuffer(item.original)) fail(`original is not a Buffer: ${what()}`, input);
}

/** What every stream of DraftItems must satisfy: indexes 0, 1, 2... and reasoned rejections. */
export function expectDraftItems(items: readonly DraftItem[], input: Buffer | string, allowed?: readonly string[]): void {
  items.forEach((item, i) => {
    if (item.index !== i) fail(`index ${item.index} at position ${i}`, input);
    if (!item.ok) expectRejection(item, input, allowed);
    else if (!Buffer.isBuffer(item.original)) fail("original of an ok item is not a Buffer", input);
  });
}

// ---- isolation: a child process with a hard heap limit and a deadline -------------------------

export interface IsolatedResult {
  readonly result: unknown;
  readonly ms: number;
  readonly peakHeapBytes: number;
}

/**
 * Runs scenarios of scenarios.ts, one after another, in one child process (isolated-runner.ts)
 * started with --max-old-space-size=`maxOldMb`, killed after `timeoutMs`. A regression that
 * allocates without bound then fails within seconds ("exited (SIGABRT) … out of its heap"),
 * naming the scenario it was in, instead of taking the test worker down after minutes; a hang
 * fails as a timeout. (A worker thread's resourceLimits is not enough: V8 can still abort the
 * whole process on a huge allocation.) Each scenario's promise settles on its own, so one test
 * per scenario reports it. The heap baseline of each scenario is taken after a full GC.
 */
export function runIsolated(
  names: readonly string[],
  opts: { maxOldMb: number; timeoutMs: number },
): Record<string, Promise<IsolatedResult>> {
  const runner = fileURLToPath(new URL("./isolated-runner.ts", import.meta.url));
  const settle = new Map<string, { resolve: (r: IsolatedResult) => void; reject: (e: Error) => void }>();
  const out: Record<string, Promise<IsolatedResult>> = {};
  for (const name of names) {
    out[name] = new Promise<IsolatedResult>((resolve, reject) => settle.set(name, { resolve, reject }));
    out[name].catch(() => {}); // a test that never awaits it must not leave an unhandled rejection
  }
  const child = spawn(process.execPath, [`--max-old-space-size=${opts.maxOldMb}`, "--expose-gc", runner, ...names], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let pending = "";
  let running = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    pending += d;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (line.startsWith("@@start ")) running = line.slice(8);
      else if (line.startsWith("{")) {
        const msg = JSON.parse(line) as { name: string; error?: string } & IsolatedResult;
        const s = settle.get(msg.name);
        settle.delete(msg.name);
        if (msg.error) s?.reject(new Error(`scenario ${msg.name} threw: ${msg.error}`));
        else s?.resolve(msg);
      }
    }
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-4000)));
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
  const failRest = (why: (name: string) => string): void => {
    for (const [name, s] of settle) s.reject(new Error(why(name)));
    settle.clear();
  };
  child.on("error", (err) => {
    clearTimeout(timer);
    failRest(() => `could not start the scenario runner: ${err.message}`);
  });
  child.on("close", (code, signal) => {
    clearTimeout(timer);
    failRest((name) =>
      signal === "SIGKILL"
        ? `scenario ${running}: no answer within ${opts.timeoutMs} ms (a hang?)${name === running ? "" : `; ${name} did not run`}`
        : `scenario ${running} exited (${signal ?? `code ${code}`}; out of its ${opts.maxOldMb} MB heap?)${name === running ? "" : `; ${name} did not run`}: ${stderr.slice(-1500)}`,
    );
  });
  return out;
}
