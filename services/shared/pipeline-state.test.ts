import { describe, expect, it } from "vitest";
import { keyCoverage, stageLag } from "./pipeline-state.ts";

describe("stage lag", () => {
  it("is the topic end minus the stored next offset, per partition in order", () => {
    const lag = stageLag(
      [
        { partition: 1, low: "0", high: "10" },
        { partition: 0, low: "0", high: "7" },
      ],
      new Map([
        [0, 7],
        [1, 4],
      ]),
    );
    expect(lag).toEqual([
      { partition: 0, next: 7, end: 7, lag: 0 },
      { partition: 1, next: 4, end: 10, lag: 6 },
    ]);
  });

  it("reads a partition with no stored offset from its log start, not from 0", () => {
    expect(stageLag([{ partition: 0, low: "40", high: "50" }], new Map())).toEqual([{ partition: 0, next: 40, end: 50, lag: 10 }]);
    expect(stageLag([{ partition: 0, low: "0", high: "0" }], new Map())).toEqual([{ partition: 0, next: 0, end: 0, lag: 0 }]);
  });

  it("never goes below zero when the stored offset is past a (recreated) topic's end", () => {
    expect(stageLag([{ partition: 0, low: "0", high: "3" }], new Map([[0, 9]]))[0]?.lag).toBe(0);
  });
});

describe("key coverage", () => {
  const now = new Date("2030-01-01T00:00:00Z");
  const days = (n: number) => new Date(now.getTime() + n * 86_400_000);

  it("is the earliest end, over owners, of each owner's run of valid keys", () => {
    const c = keyCoverage(
      [
        { ownerId: "met", validFrom: days(-10), validUntil: days(30) },
        { ownerId: "nca", validFrom: days(-10), validUntil: days(5) },
      ],
      now,
    );
    expect(c).toEqual({ expirySeconds: 5 * 86_400, ownersWithoutValidKey: 0, owners: 2 });
  });

  it("carries a run on through a successor that starts before its predecessor ends (a rotation done in time)", () => {
    const c = keyCoverage(
      [
        { ownerId: "met", validFrom: days(-10), validUntil: days(3) },
        { ownerId: "met", validFrom: days(2), validUntil: days(400) },
      ],
      now,
    );
    expect(c.expirySeconds).toBe(400 * 86_400);
  });

  it("does not bridge a gap between two keys", () => {
    const c = keyCoverage(
      [
        { ownerId: "met", validFrom: days(-10), validUntil: days(3) },
        { ownerId: "met", validFrom: days(4), validUntil: days(400) },
      ],
      now,
    );
    expect(c.expirySeconds).toBe(3 * 86_400);
  });

  it("is +Inf when every run is open-ended, and counts owners with no key valid now", () => {
    const c = keyCoverage(
      [
        { ownerId: "met", validFrom: days(-10), validUntil: null },
        { ownerId: "gmp", validFrom: days(-10), validUntil: days(-1) },
        { ownerId: "wmp", validFrom: days(1), validUntil: null },
      ],
      now,
    );
    expect(c).toEqual({ expirySeconds: Number.POSITIVE_INFINITY, ownersWithoutValidKey: 2, owners: 3 });
  });

  it("takes keys with no start (a partner's trusted hub keys) as valid until their end", () => {
    const c = keyCoverage(
      [
        { ownerId: "hub", validFrom: null, validUntil: days(10) },
        { ownerId: "hub", validFrom: null, validUntil: days(20) },
      ],
      now,
    );
    expect(c.expirySeconds).toBe(20 * 86_400);
    expect(keyCoverage([], now)).toEqual({ expirySeconds: Number.POSITIVE_INFINITY, ownersWithoutValidKey: 0, owners: 0 });
  });
});
