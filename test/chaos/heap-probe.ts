/**
 * Preloaded into every service process of the chaos run (node --import): appends the process's
 * resident set and V8 heap to $CHAOS_HEAP_FILE every few seconds, one JSON line each, so the soak
 * can show whether memory stays flat. It only reads process.memoryUsage(); the timer never keeps
 * the process alive.
 */
import { appendFileSync } from "node:fs";
import { getHeapSpaceStatistics } from "node:v8";

const file = process.env["CHAOS_HEAP_FILE"];
const everyMs = Number(process.env["CHAOS_HEAP_EVERY_MS"] ?? 5_000);
if (file) {
  const write = () => {
    const m = process.memoryUsage();
    // The young generation's resident pages: it grows under bursts of allocation that survive a scavenge.
    const newSpace = getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.physical_space_size ?? 0;
    const line = { t: Date.now(), pid: process.pid, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, newSpace };
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      /* a full disk must not stop the service */
    }
  };
  write();
  setInterval(write, everyMs).unref();
}
