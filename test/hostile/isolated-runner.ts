/**
 * Runs one scenario of scenarios.ts in this (child) process and prints its result as JSON on the
 * last line of stdout: { result, ms, peakHeapBytes } or { error }. Started by runIsolated
 * (support.ts) with a small --max-old-space-size, so unbounded allocation kills only this process.
 */
import { scenarios } from "./scenarios.ts";

const name = process.argv[2] ?? "";
const scenario = scenarios[name];
const base = process.memoryUsage().heapUsed;
let peak = 0;
const sample = (): void => {
  peak = Math.max(peak, process.memoryUsage().heapUsed - base);
};
const timer = setInterval(sample, 5);
try {
  if (!scenario) throw new Error(`no scenario named ${JSON.stringify(name)}`);
  const start = performance.now();
  const result = await scenario(sample);
  const ms = performance.now() - start;
  sample();
  process.stdout.write(`\n${JSON.stringify({ result, ms, peakHeapBytes: peak })}\n`);
} catch (err) {
  process.stdout.write(`\n${JSON.stringify({ error: String((err as Error).stack ?? err) })}\n`);
} finally {
  clearInterval(timer);
}
