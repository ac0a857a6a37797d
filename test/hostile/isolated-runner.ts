/**
 * Runs scenarios of scenarios.ts one after another in this (child) process, printing for each a
 * line "@@start <name>" before it and one JSON line after it: {name, result, ms, peakHeapBytes}
 * or {name, error}. Started by runIsolated (support.ts) with a small --max-old-space-size, so
 * unbounded allocation kills only this process, and the last "@@start" line names the culprit.
 */
import { scenarios } from "./scenarios.ts";

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

for (const name of process.argv.slice(2)) {
  process.stdout.write(`\n@@start ${name}\n`);
  gc();
  const base = process.memoryUsage().heapUsed;
  let peak = 0;
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage().heapUsed - base);
  };
  const timer = setInterval(sample, 5);
  try {
    const scenario = scenarios[name];
    if (!scenario) throw new Error(`no scenario named ${JSON.stringify(name)}`);
    const start = performance.now();
    const result = await scenario(sample);
    const ms = performance.now() - start;
    sample();
    process.stdout.write(`\n${JSON.stringify({ name, result, ms, peakHeapBytes: peak })}\n`);
  } catch (err) {
    process.stdout.write(`\n${JSON.stringify({ name, error: String((err as Error).stack ?? err) })}\n`);
  } finally {
    clearInterval(timer);
  }
}
