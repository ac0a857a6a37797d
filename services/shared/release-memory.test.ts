import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { releaseAfterBursts, releaseEvery } from "./release-memory.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "./runtime-settings.ts";

const MODULE = fileURLToPath(new URL("./release-memory.ts", import.meta.url));

/**
 * In a process started as the services are: a burst of 150 MB of small objects, dropped and
 * collected the ordinary way, then released. Prints the resident set (MB) after each step.
 */
const BURST = `
import { releaseFreedMemory } from ${JSON.stringify(MODULE)};
const mb = () => Math.round(process.memoryUsage().rss / 1048576);
let burst = [];
for (let i = 0; i < 1_500_000; i++) burst.push({ i, s: "record-" + i });
burst = null;
globalThis.gc?.();
const collected = mb();
const released = releaseFreedMemory();
console.log(JSON.stringify({ collected, released, after: mb() }));
`;

async function burst(flags: readonly string[]): Promise<{ collected: number; released: boolean; after: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, "--input-type=module", "-e", BURST], {
    env: { ...process.env, ...SERVICE_MALLOC_ENV, NODE_OPTIONS: "" },
  });
  return JSON.parse(stdout) as { collected: number; released: boolean; after: number };
}

describe("releaseFreedMemory", () => {
  it("gives back the pages an ordinary collection keeps, in a process started with the service flags", async () => {
    const r = await burst(SERVICE_NODE_FLAGS);
    expect(r.released).toBe(true);
    // The ordinary collection leaves the freed heap resident; the release returns most of it.
    expect(r.collected - r.after).toBeGreaterThan(50);
  });

  it("does nothing in a process started without --expose-gc", async () => {
    const r = await burst(SERVICE_NODE_FLAGS.filter((f) => f !== "--expose-gc"));
    expect(r.released).toBe(false);
    expect(Math.abs(r.collected - r.after)).toBeLessThan(20);
  });
});

describe("releaseAfterBursts", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("releases once, a quiet period after the last of a run of bursts", () => {
    vi.useFakeTimers();
    const release = vi.fn();
    const after = releaseAfterBursts(10_000, release);
    after.soon();
    vi.advanceTimersByTime(6_000);
    after.soon();
    vi.advanceTimersByTime(9_999);
    expect(release).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(release).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60_000);
    expect(release).toHaveBeenCalledTimes(1);
  });

  it("releases nothing once stopped", () => {
    vi.useFakeTimers();
    const release = vi.fn();
    const after = releaseAfterBursts(10_000, release);
    after.soon();
    after.stop();
    vi.advanceTimersByTime(60_000);
    expect(release).not.toHaveBeenCalled();
  });
});

describe("releaseEvery", () => {
  it("releases on every nth call only", () => {
    const release = vi.fn();
    const slice = releaseEvery(4, release);
    for (let i = 0; i < 3; i++) slice();
    expect(release).not.toHaveBeenCalled();
    slice();
    expect(release).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 7; i++) slice();
    expect(release).toHaveBeenCalledTimes(2);
    slice();
    expect(release).toHaveBeenCalledTimes(3);
  });
});
