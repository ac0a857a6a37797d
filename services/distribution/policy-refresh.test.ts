import type { Admin } from "kafkajs";
import { describe, expect, it, vi } from "vitest";
import { createLogger } from "../shared/logging.ts";
import type { Queryable } from "../shared/postgres.ts";
import { LOCAL_TOPIC_PLAN, topicNames } from "../shared/topics.ts";
import type { PartnerPolicy } from "./policy.ts";
import { policyRefresh, schedulePolicyRefresh } from "./policy-refresh.ts";

/** partner_policies and policy_applied as the refresh reads them; S3 delivery, so no feed topic is provisioned. */
function hubTables() {
  const state = { version: 1, applied: 1 };
  const db = {
    query: async (text: string) => {
      if (text.includes("FROM partner_policies")) {
        return {
          rows: [
            {
              partner_id: "taskforce",
              categories: ["A", "B", "C"],
              min_grading_status: "indicative",
              algorithms: ["md5"],
              scheme: "ics",
              extra_fields: [],
              delivery: "s3",
              feed_partitions: 1,
              version: state.version,
              withhold_under_review: false,
            },
          ],
        };
      }
      if (text.includes("FROM policy_applied")) return { rows: [{ partner_id: "taskforce", version: state.applied }] };
      throw new Error(`unexpected query: ${text}`);
    },
  } as unknown as Queryable;
  return { state, db };
}

describe("policyRefresh", () => {
  it("notes a changed policy whether this instance reconciles it or another one already did", async () => {
    const { state, db } = hubTables();
    const reconcile = vi.fn(async (_p: PartnerPolicy) => 0);
    const onReconciled = vi.fn();
    const onPolicyChanged = vi.fn();
    const refresh = policyRefresh({
      db,
      admin: {} as Admin,
      topics: topicNames("refresh-test"),
      feedTopicPlan: LOCAL_TOPIC_PLAN,
      logger: createLogger("refresh-test", "silent"),
      reconcile,
      onReconciled,
      onPolicyChanged,
    });
    await refresh.refresh(); // the first load is no change
    expect(onPolicyChanged).not.toHaveBeenCalled();
    state.version = 2;
    state.applied = 2; // another instance reconciled version 2 first
    await refresh.refresh();
    expect(reconcile).not.toHaveBeenCalled();
    expect(onPolicyChanged).toHaveBeenCalledTimes(1);
    await refresh.refresh();
    expect(onPolicyChanged).toHaveBeenCalledTimes(1);
    state.version = 3; // this instance reconciles version 3
    await refresh.refresh();
    expect(reconcile).toHaveBeenCalledTimes(1);
    expect(onReconciled).toHaveBeenCalledTimes(1);
    expect(onPolicyChanged).toHaveBeenCalledTimes(2);
  });
});

describe("schedulePolicyRefresh", () => {
  it("skips the ticks that come while a refresh is still in hand, then refreshes again", async () => {
    vi.useFakeTimers();
    try {
      let finish: () => void = () => undefined;
      const refresh = vi.fn(() => new Promise<void>((resolve) => (finish = resolve)));
      const timer = schedulePolicyRefresh(refresh, 2_000, createLogger("test", "silent"));
      await vi.advanceTimersByTimeAsync(2_000);
      expect(refresh).toHaveBeenCalledTimes(1);
      // A long reconciliation: three more ticks pass while the first refresh is in hand.
      await vi.advanceTimersByTimeAsync(6_000);
      expect(refresh).toHaveBeenCalledTimes(1);
      finish();
      await vi.advanceTimersByTimeAsync(2_000);
      expect(refresh).toHaveBeenCalledTimes(2);
      clearInterval(timer);
    } finally {
      vi.useRealTimers();
    }
  });

  it("refreshes again after a refresh that failed", async () => {
    vi.useFakeTimers();
    try {
      const refresh = vi.fn().mockRejectedValueOnce(new Error("database away")).mockResolvedValue(undefined);
      const timer = schedulePolicyRefresh(refresh, 2_000, createLogger("test", "silent"));
      await vi.advanceTimersByTimeAsync(4_000);
      expect(refresh).toHaveBeenCalledTimes(2);
      clearInterval(timer);
    } finally {
      vi.useRealTimers();
    }
  });
});
