import { describe, expect, it } from "vitest";
import type { Sample } from "./samples.ts";
import { lagOverRun } from "./samples.ts";

/** Readings every 10 s of one stage's lag. */
const series = (lags: readonly (number | null)[]): Sample[] => lags.map((lag, i) => ({ t: i * 10, lag: { sink: lag }, rssMb: {} }));

describe("a stage's lag over the soak", () => {
  it("tells the bursts of policy changes apart from the stream's own lag", () => {
    // The stream keeps 2-4 behind; changes at 25 s and 95 s reissue 300 and then 900 records.
    const samples = series([3, 2, 4, 300, 120, 3, 2, 4, 2, 3, 900, 400, 50, 2, 3]);
    const lag = lagOverRun(samples, "sink", [25, 95], 0);
    expect(lag.bursts).toEqual([
      { at: 25, peak: 300, drainS: 25 },
      { at: 95, peak: 900, drainS: 35 },
    ]);
    // Every reading: the bursts make the last third look worse; outside them it is flat.
    expect(lag.all.last).toBeGreaterThan(3 * lag.all.first);
    expect(lag.steady.readings).toBe(10);
    expect(lag.steady.first).toBe(3);
    expect(lag.steady.last).toBeCloseTo(8 / 3);
  });

  it("counts a backlog that keeps growing as the stream's own lag, and a burst never drained as such", () => {
    // No policy change explains the rise: it stays in the steady figures.
    const growing = lagOverRun(series([1, 5, 10, 20, 40, 80]), "sink", [], 0);
    expect(growing.steady.last).toBeGreaterThan(growing.steady.first * 10);
    // A change whose burst is still there at the end of the run has no drain time.
    const stuck = lagOverRun(series([2, 2, 2, 500, 600, 700]), "sink", [25], 0);
    expect(stuck.bursts).toEqual([{ at: 25, peak: 700, drainS: null }]);
  });

  it("counts no burst where a change did not raise the lag within its onset, and skips unread readings", () => {
    const lag = lagOverRun(series([2, 3, null, 2, 3, 2, 2, 9, 2]), "sink", [15], 0);
    // The 9 at 70 s is 55 s after the change: the stream's own, not the change's.
    expect(lag.bursts).toEqual([]);
    expect(lag.steady.readings).toBe(8);
  });

  it("measures from the end of the warm-up", () => {
    const lag = lagOverRun(series([50, 50, 2, 2, 2, 2]), "sink", [5], 20);
    expect(lag.bursts).toEqual([]);
    expect(lag.all.first).toBe(2);
  });
});
