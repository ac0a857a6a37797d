/** The force CLI's import progress: rate and time left from the hub's job, and the plain line for logs. */
import { describe, expect, it } from "vitest";
import type { ImportJob } from "../shared/wire/ingest-api.ts";
import { formatDuration, importFigures, importProgress, progressLine } from "./import-progress.ts";

const running = (over: Partial<ImportJob> = {}): ImportJob => ({
  importId: "imp-1",
  agencyId: "force-a",
  bucket: "b",
  key: "imports/force-a/x.jsonl",
  status: "running",
  receipt: { accepted: 11_990, duplicates: 5, rejected: 5, byReason: { INVALID_HASH: 5 } },
  receiptKey: null,
  error: null,
  linesRead: 12_000,
  bytesRead: 250_000_000,
  totalBytes: 1_000_000_000,
  startedAt: "2026-01-01T10:00:00.000Z",
  updatedAt: "2026-01-01T10:01:40.000Z",
  ...over,
});

describe("importFigures", () => {
  it("takes the rate from lines over the hub's elapsed time and the time left from the bytes still to read", () => {
    // 12,000 lines in 100 s; a quarter of the bytes in 100 s leaves three quarters: 300 s.
    expect(importFigures(running())).toEqual({
      read: 12_000,
      accepted: 11_990,
      duplicates: 5,
      refused: 5,
      ratePerSecond: 120,
      secondsLeft: 300,
      fraction: 0.25,
    });
  });

  it("says unknown rather than guessing: just started, no size, or a hub without progress fields", () => {
    const started = importFigures(running({ linesRead: 0, bytesRead: 0, updatedAt: "2026-01-01T10:00:00.000Z" }));
    expect([started.ratePerSecond, started.secondsLeft, started.fraction]).toEqual([null, null, 0]);
    const sizeless = importFigures(running({ totalBytes: null }));
    expect([sizeless.ratePerSecond, sizeless.secondsLeft, sizeless.fraction]).toEqual([120, null, null]);
    const { linesRead, bytesRead, totalBytes, startedAt, updatedAt, ...old } = running();
    expect(importFigures(old)).toMatchObject({ read: 0, ratePerSecond: null, secondsLeft: null, fraction: null });
  });

  it("has nothing left once done", () => {
    expect(importFigures(running({ status: "done", bytesRead: 1_000_000_000 })).secondsLeft).toBe(0);
  });
});

describe("progress text", () => {
  it("formats durations", () => {
    expect([formatDuration(9.4), formatDuration(247), formatDuration(7500), formatDuration(null)]).toEqual(["9s", "4m 07s", "2h 05m", "-"]);
  });

  it("writes one plain line with read, accepted, refused, rate and time left", () => {
    expect(progressLine(running())).toBe(
      "import imp-1 running: 25% | read 12,000 | accepted 11,990 | duplicates 5 | refused 5 | 120 items/s | 5m 00s left",
    );
    expect(progressLine(running({ status: "queued" }))).toBe("import imp-1 queued: waiting for the hub to start it");
  });

  it("off a terminal prints a plain line at most every few seconds, and none for the finished job", () => {
    let t = 0;
    const out: string[] = [];
    const watch = importProgress({ interactive: false, log: (l) => out.push(l), everyMs: 5000, now: () => t });
    for (const at of [0, 250, 4999, 5000, 7000, 10_500]) {
      t = at;
      watch.update(running({ linesRead: at }));
    }
    t = 20_000;
    watch.update(running({ status: "done" }));
    watch.stop();
    expect(out.map((l) => l.match(/read ([\d,]+)/)?.[1])).toEqual(["0", "5,000", "10,500"]);
  });
});
