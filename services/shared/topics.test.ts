import { describe, expect, it } from "vitest";
import { coreTopicSpecs, feedTopicSpec, topicPlanForBrokers } from "./topics.ts";

describe("topic plan for a cluster", () => {
  it("replicates three times from three brokers up, with min.insync.replicas 2", () => {
    expect(topicPlanForBrokers(3)).toEqual({ partitions: 6, replicationFactor: 3, minInsyncReplicas: 2 });
    expect(topicPlanForBrokers(5, 12)).toEqual({ partitions: 12, replicationFactor: 3, minInsyncReplicas: 2 });
  });

  it("keeps one replica per broker below three, so no write waits for a broker that does not exist", () => {
    expect(topicPlanForBrokers(1)).toEqual({ partitions: 6, replicationFactor: 1, minInsyncReplicas: 1 });
    expect(topicPlanForBrokers(2)).toEqual({ partitions: 6, replicationFactor: 2, minInsyncReplicas: 1 });
  });

  it("puts the plan's replication and min.insync.replicas on every core and feed topic", () => {
    const plan = topicPlanForBrokers(3);
    for (const spec of [...coreTopicSpecs(plan), feedTopicSpec("hotline-uk", plan)]) {
      expect(spec.replicationFactor).toBe(3);
      expect(spec.configs["min.insync.replicas"]).toBe("2");
    }
  });

  it("refuses a cluster of no brokers", () => {
    expect(() => topicPlanForBrokers(0)).toThrow(/at least one broker/);
  });
});
