import { describe, expect, it } from "vitest";
import { BENCH_LABEL, type CpuSnapshot, cpuDelta, cpuUsageMs, procCpuMs } from "./proc.ts";

/** A snapshot with one pid per label, at `at` ms, with the given CPU seconds so far. */
function snapshot(at: number, cpu: Record<string, number>): CpuSnapshot {
  const groups: CpuSnapshot["groups"] = new Map(
    Object.entries(cpu).map(([label, seconds], i) => [label, new Map([[100 + i, { cpu: seconds, wait: 0 }]])]),
  );
  return { at, machine: { busy: 0, total: 0 }, groups };
}

describe("cpuDelta", () => {
  const labels = {
    ingest: 1,
    dedup: 2,
    "sink-hotline": 3,
    "postgres backends of hashrelay-dedup": 4,
    "postgres backends of sink-hotline": 5,
    "postgres server, all (shared)": 6,
    "kafka broker (shared)": 7,
    [BENCH_LABEL]: 8,
  };
  const before = snapshot(0, Object.fromEntries(Object.keys(labels).map((l) => [l, 0])));
  const after = snapshot(10_000, labels);
  const d = cpuDelta(before, after);

  it("counts the backends once, inside the whole server's figure", () => {
    expect(d.oursCpuSeconds).toBe(1 + 2 + 3 + 6 + 7 + 8);
  });

  it("leaves the sinks, their backends and the bench out of the hub's part", () => {
    // 27 in all, less the sink (3), its backends (5, inside the server's 6) and the bench (8).
    expect(d.hubCpuSeconds).toBe(27 - 3 - 5 - 8);
  });

  it("gives each label its share of one core over the interval", () => {
    expect(d.perLabel["kafka broker (shared)"]?.percentOfOneCore).toBeCloseTo(70);
  });
});

describe("procCpuMs", () => {
  it("reads this process's CPU in milliseconds, as process.cpuUsage() counts it", () => {
    const ms = procCpuMs(process.pid);
    expect(ms).toBeGreaterThan(0);
    // /proc counts in clock ticks (10 ms): the two readings agree to a few ticks.
    expect(Math.abs(ms - cpuUsageMs(process.cpuUsage()))).toBeLessThan(100);
  });

  it("refuses a process that is not there rather than reading it as zero", () => {
    expect(() => procCpuMs(2 ** 22 + 1)).toThrow("no CPU reading for process 4194305");
  });
});
