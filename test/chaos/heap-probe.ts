/**
 * Preloaded into every service process of the chaos run (node --import): appends the process's
 * resident set and V8 heap to $CHAOS_HEAP_FILE every few seconds, one JSON line each, so the soak
 * can show whether memory stays flat. It only reads process.memoryUsage(); the timer never keeps
 * the process alive.
 */
import { appendFileSync } from "node:fs";

const file = process.env["CHAOS_HEAP_FILE"];
const everyMs = Number(process.env["CHAOS_HEAP_EVERY_MS"] ?? 5_000);
if (file) {
  const write = () => {
    const m = process.memoryUsage();
    const line = { t: Date.now(), pid: process.pid, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal };
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      /* a full disk must not stop the service */
    }
  };
  write();
  setInterval(write, everyMs).unref();
}
