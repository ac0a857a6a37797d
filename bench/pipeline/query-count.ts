/**
 * Preloaded into a service process by the pipeline benchmark's --profile (node --import): counts
 * the SQL statements the process sends to PostgreSQL, by statement (whitespace folded, first 100
 * characters), with the wall time from sending each until its answer (server time plus the round
 * trip, and any wait for a CPU), how many transactions it began, and the Kafka requests it sent by
 * API (Produce, Fetch, OffsetCommit, Heartbeat...), and writes them as JSON when the process exits
 * to $BENCH_QUERY_COUNT_FILE. It only observes: every call goes on to pg and kafkajs unchanged,
 * same arguments, same result.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import pg from "pg";

const file = process.env["BENCH_QUERY_COUNT_FILE"];
if (file) {
  // Per second of the clock as well, so that one phase of a run can be read apart.
  const bySecond = new Map<number, Record<string, number>>();
  const tick = (what: string) => {
    const second = Math.floor(Date.now() / 1000);
    const b = bySecond.get(second) ?? {};
    b[what] = (b[what] ?? 0) + 1;
    bySecond.set(second, b);
  };
  const counts = new Map<string, { count: number; ms: number }>();
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0];
    const text =
      typeof q === "string" ? q : typeof q === "object" && q !== null && "text" in q ? String((q as { text: unknown }).text) : "?";
    const key = text.replace(/\s+/g, " ").trim().slice(0, 100);
    tick("sql");
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
  // kafkajs is CommonJS: its Connection class is the one every client of this process uses.
  const kafkaRequests = new Map<string, number>();
  const Connection = createRequire(import.meta.url)("kafkajs/src/network/connection.js") as {
    prototype: { send: (this: unknown, protocol: { request: { apiName: string } }) => Promise<unknown> };
  };
  const send = Connection.prototype.send;
  Connection.prototype.send = function (this: unknown, protocol: { request: { apiName: string } }) {
    const api = protocol.request.apiName;
    kafkaRequests.set(api, (kafkaRequests.get(api) ?? 0) + 1);
    tick(api);
    return send.call(this, protocol);
  };
  process.on("exit", () => {
    const byTime = [...counts].sort((a, b) => b[1].ms - a[1].ms);
    const total = byTime.reduce((n, [, c]) => n + c.count, 0);
    const totalMs = byTime.reduce((n, [, c]) => n + c.ms, 0);
    const transactions = counts.get("BEGIN")?.count ?? 0;
    const statements = Object.fromEntries(
      byTime.map(([k, c]) => [k, { count: c.count, ms: Math.round(c.ms), avgMs: +(c.ms / c.count).toFixed(3) }]),
    );
    const kafka = Object.fromEntries([...kafkaRequests].sort((a, b) => b[1] - a[1]));
    writeFileSync(
      file,
      `${JSON.stringify({ total, totalMs: Math.round(totalMs), transactions, statements, kafka, bySecond: Object.fromEntries(bySecond) }, null, 2)}\n`,
    );
  });
}
