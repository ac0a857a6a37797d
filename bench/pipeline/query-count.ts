/**
 * Preloaded into a service process by the pipeline benchmark's --profile (node --import): counts
 * the SQL statements the process sends to PostgreSQL, by statement (whitespace folded, first 100
 * characters), and how many transactions it began, and writes them as JSON when the process exits
 * to $BENCH_QUERY_COUNT_FILE. It only counts: every call goes on to pg unchanged, same arguments,
 * same result.
 */
import { writeFileSync } from "node:fs";
import pg from "pg";

const file = process.env["BENCH_QUERY_COUNT_FILE"];
if (file) {
  const counts = new Map<string, number>();
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0];
    const text =
      typeof q === "string" ? q : typeof q === "object" && q !== null && "text" in q ? String((q as { text: unknown }).text) : "?";
    const key = text.replace(/\s+/g, " ").trim().slice(0, 100);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return original.apply(this, args);
  } as typeof pg.Client.prototype.query;
  process.on("exit", () => {
    const byCount = [...counts].sort((a, b) => b[1] - a[1]);
    const total = byCount.reduce((n, [, c]) => n + c, 0);
    const transactions = counts.get("BEGIN") ?? 0;
    writeFileSync(file, `${JSON.stringify({ total, transactions, statements: Object.fromEntries(byCount) }, null, 2)}\n`);
  });
}
