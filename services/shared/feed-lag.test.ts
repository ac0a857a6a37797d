import { describe, expect, it } from "vitest";
import { feedLag, partitionLag } from "./feed-lag.ts";

describe("partner feed lag", () => {
  it("is the records between the partner's position and the end", () => {
    expect(partitionLag({ partition: 0, low: "0", high: "10" }, "10")).toMatchObject({ lag: 0, state: "ok" });
    expect(partitionLag({ partition: 0, low: "0", high: "10" }, "4")).toMatchObject({ position: 4, lag: 6, state: "behind" });
  });

  it("flags a position below the log start: retention deleted records the partner never read", () => {
    expect(partitionLag({ partition: 1, low: "5", high: "10" }, "3")).toMatchObject({ lag: 7, state: "lost" });
    expect(partitionLag({ partition: 1, low: "5", high: "10" }, undefined)).toMatchObject({ position: null, lag: 5, state: "lost" });
  });

  it("a group that never committed is only waiting while nothing was deleted", () => {
    expect(partitionLag({ partition: 2, low: "0", high: "3" }, undefined)).toMatchObject({ lag: 3, state: "never-read" });
    expect(partitionLag({ partition: 2, low: "0", high: "0" }, "-1")).toMatchObject({ position: null, lag: 0, state: "ok" });
  });

  it("sums a feed's partitions and says whether any is lost", () => {
    const report = feedLag(
      [
        { partition: 1, low: "0", high: "8" },
        { partition: 0, low: "2", high: "9" },
      ],
      new Map([
        [0, "1"],
        [1, "8"],
      ]),
    );
    expect(report.partitions.map((p) => [p.partition, p.state])).toEqual([
      [0, "lost"],
      [1, "ok"],
    ]);
    expect(report).toMatchObject({ lag: 8, lost: true });
  });
});
