import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logging.ts";
import { countRejections, createRegistry, recordMetrics } from "./metrics.ts";
import { ScrapeSources } from "./scrape-sources.ts";

const logger = createLogger("test", "silent");

async function sample(registry: Registry, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).map((v) => ({ labels: { ...v.labels } as Record<string, string | number>, value: v.value }));
}

describe("scrape-time sources", () => {
  it("reads once per cache period for all the gauges built on a source", async () => {
    const registry = new Registry();
    let reads = 0;
    const source = new ScrapeSources(registry, logger, { ttlMs: 60_000 }).source("lag", async () => {
      reads++;
      return [
        { partition: 0, lag: 3 },
        { partition: 1, lag: 0 },
      ];
    });
    source.gauge({ name: "t_lag", help: "h", labelNames: ["partition"] as const }, (rows) =>
      rows.map((r) => ({ labels: { partition: r.partition }, value: r.lag })),
    );
    source.gauge({ name: "t_lag_total", help: "h" }, (rows) => [{ value: rows.reduce((n, r) => n + r.lag, 0) }]);
    const text = await registry.metrics();
    await registry.metrics();
    expect(reads).toBe(1);
    expect(text).toContain('t_lag{partition="0"} 3');
    expect(text).toContain("t_lag_total 3");
  });

  it("leaves the gauges empty and counts an error when a read fails or hangs, and recovers", async () => {
    const registry = new Registry();
    let mode: "fail" | "hang" | "ok" = "fail";
    const source = new ScrapeSources(registry, logger, { ttlMs: 0, timeoutMs: 50 }).source("outbox", async () => {
      if (mode === "fail") throw new Error("connection refused");
      if (mode === "hang") await new Promise((r) => setTimeout(r, 1_000));
      return 7;
    });
    source.gauge({ name: "t_depth", help: "h" }, (n) => [{ value: n }]);
    source.gauge({ name: "t_depth_by", help: "h", labelNames: ["table"] as const }, (n) => [{ labels: { table: "outbox" }, value: n }]);
    expect(await sample(registry, "t_depth")).toEqual([{ labels: {}, value: Number.NaN }]);
    expect(await sample(registry, "t_depth_by")).toEqual([]);
    mode = "hang";
    expect(await sample(registry, "t_depth_by")).toEqual([]);
    expect(await sample(registry, "hashrelay_metrics_source_errors_total")).toEqual([{ labels: { source: "outbox" }, value: 3 }]);
    mode = "ok";
    expect(await sample(registry, "t_depth")).toEqual([{ labels: {}, value: 7 }]);
    expect(await sample(registry, "t_depth_by")).toEqual([{ labels: { table: "outbox" }, value: 7 }]);
  });

  it("shares one read in flight between concurrent scrapes", async () => {
    const registry = new Registry();
    let reads = 0;
    const source = new ScrapeSources(registry, logger, { ttlMs: 0 }).source("slow", async () => {
      reads++;
      await new Promise((r) => setTimeout(r, 30));
      return 1;
    });
    source.gauge({ name: "t_slow", help: "h" }, (n) => [{ value: n }]);
    await Promise.all([registry.metrics(), registry.metrics(), registry.metrics()]);
    expect(reads).toBe(1);
  });
});

describe("record metrics", () => {
  it("counts rejections by reason, and the trust refusals among them as signature failures too", async () => {
    const registry = createRegistry();
    const records = recordMetrics(registry, "Submissions");
    countRejections(records, ["BAD_SIGNATURE", "INVALID_HASH", "BAD_SIGNATURE", "KEY_EXPIRED"]);
    records.reject("STALE_SUBMISSION", 0);
    const rejected = (await sample(registry, "hashrelay_records_rejected_total")).filter((r) => r.value > 0);
    expect(rejected.sort((a, b) => String(a.labels["reason"]).localeCompare(String(b.labels["reason"])))).toEqual([
      { labels: { reason: "BAD_SIGNATURE" }, value: 2 },
      { labels: { reason: "INVALID_HASH" }, value: 1 },
      { labels: { reason: "KEY_EXPIRED" }, value: 1 },
    ]);
    // Every reason is there from the start, so that the first of a kind shows as an increase.
    expect((await sample(registry, "hashrelay_records_rejected_total")).find((r) => r.labels["reason"] === "SEQ_GAP")?.value).toBe(0);
    const failures = (await sample(registry, "hashrelay_signature_failures_total")).filter((r) => r.value > 0);
    expect(failures.map((f) => [f.labels["reason"], f.value]).sort()).toEqual([
      ["BAD_SIGNATURE", 2],
      ["KEY_EXPIRED", 1],
    ]);
    // The process defaults are there, unprefixed, as Prometheus expects them.
    expect(await registry.metrics()).toMatch(/^process_cpu_seconds_total /m);
  });
});
