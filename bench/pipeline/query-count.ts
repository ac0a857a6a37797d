/**
 * Preloaded into a service process by the pipeline benchmark's --profile (node --import): counts
 * the SQL statements the process sends to PostgreSQL, by statement (whitespace folded, first 100
 * characters), with the wall time from sending each until its answer (server time plus the round
 * trip, and any wait for a CPU), and how many transactions it began, and writes them as JSON when
 * the process exits to $BENCH_QUERY_COUNT_FILE. It only observes: every call goes on to pg
 * unchanged, same arguments, same result.
 */
import { writeFileSync } from "node:fs";
import pg from "pg";

const file = process.env["BENCH_QUERY_COUNT_FILE"];
if (file) {
  const counts = new Map<string, { count: number; ms: number }>();
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0];
    const text =
      typeof q === "string" ? q : typeof q === "object" && q !== null && "text" in q ? String((q as { text: unknown }).text) : "?";
    const key = text.replace(/\s+/g, " ").trim().slice(0, 100);
    const entry = counts.get(key) ?? { count: 0, ms: 0 };
    counts.set(key, entry);
    entry.count++;
    const started = performance.now();
    const result = original.apply(this, args);
    if (result instanceof Promise) {
      void result.then(
        () => (entry.ms += performance.now() - started),
        () => (entry.ms += performance.now() - started),
      );
    }
    return result;
  } as typeof pg.Client.prototype.query;
  process.on("exit", () => {
    const byTime = [...counts].sort((a, b) => b[1].ms - a[1].ms);
    const total = byTime.reduce((n, [, c]) => n + c.count, 0);
    const totalMs = byTime.reduce((n, [, c]) => n + c.ms, 0);
    const transactions = counts.get("BEGIN")?.count ?? 0;
    const statements = Object.fromEntries(
      byTime.map(([k, c]) => [k, { count: c.count, ms: Math.round(c.ms), avgMs: +(c.ms / c.count).toFixed(3) }]),
    );
    writeFileSync(file, `${JSON.stringify({ total, totalMs: Math.round(totalMs), transactions, statements }, null, 2)}\n`);
  });
}
