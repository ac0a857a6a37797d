import { describe, expect, it } from "vitest";
import { BUSY_ROUND_MESSAGES, roundSpacingMs, waitBeforeRoundMs } from "./round-pacing.ts";

const dedup = { minIntervalMs: 300, trickleIntervalMs: 150, maxMessages: 1_000 };
const sink = { minIntervalMs: 300, trickleIntervalMs: 0, maxMessages: 1_000 };

describe("round pacing", () => {
  it("spaces steady rounds by the round interval", () => {
    expect(roundSpacingMs({ messages: 60, behind: 0 }, dedup)).toBe(300);
    expect(roundSpacingMs({ messages: BUSY_ROUND_MESSAGES, behind: 3 }, sink)).toBe(300);
  });

  it("spaces a trickle's rounds by the trickle interval, and not at all where it is 0", () => {
    expect(roundSpacingMs({ messages: 1, behind: 0 }, dedup)).toBe(150);
    expect(roundSpacingMs({ messages: 3, behind: 0 }, dedup)).toBe(150);
    expect(roundSpacingMs({ messages: 3, behind: 0 }, sink)).toBe(0);
  });

  it("does not treat a paced trickle's burst multiplied by fan-out as steady traffic at a sink", () => {
    // Four submissions in one paced round, two feed records each for a partner taking md5 and sha1.
    expect(roundSpacingMs({ messages: 8, behind: 0 }, sink)).toBe(0);
  });

  it("does not space rounds with a backlog behind them, nor after a full round", () => {
    expect(roundSpacingMs({ messages: 60, behind: BUSY_ROUND_MESSAGES }, dedup)).toBe(0);
    expect(roundSpacingMs({ messages: 2, behind: 500 }, dedup)).toBe(0);
    expect(roundSpacingMs({ messages: 250, behind: 0 }, dedup)).toBe(0);
    expect(roundSpacingMs({ messages: 249, behind: 0 }, dedup)).toBe(300);
  });

  it("never waits when both intervals are 0", () => {
    const none = { minIntervalMs: 0, trickleIntervalMs: 0, maxMessages: Number.POSITIVE_INFINITY };
    expect(roundSpacingMs({ messages: 60, behind: 0 }, none)).toBe(0);
    expect(roundSpacingMs({ messages: 1, behind: 0 }, none)).toBe(0);
  });

  it("before a round waits out what is left of the previous round's spacing, unless a backlog is behind it", () => {
    const previous = { messages: 60, behind: 0, startedAt: 10_000 };
    expect(waitBeforeRoundMs(previous, 0, dedup, 10_100)).toBe(200);
    expect(waitBeforeRoundMs(previous, BUSY_ROUND_MESSAGES, dedup, 10_100)).toBe(0);
    expect(waitBeforeRoundMs(previous, 0, dedup, 10_400)).toBe(0);
    // A message after a quiet spell starts a round at once.
    expect(waitBeforeRoundMs({ messages: 1, behind: 0, startedAt: 10_000 }, 0, dedup, 12_000)).toBe(0);
    expect(waitBeforeRoundMs({ messages: 0, behind: 0, startedAt: 0 }, 0, dedup, 10_000)).toBe(0);
  });
});
