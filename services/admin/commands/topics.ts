/**
 * `hashrelay topics`: creates or updates the namespace's core topics and the named partners' feed
 * topics to the given plan; topics that already match are left alone.
 */
import type { Command } from "commander";
import { clusterTopicPlan, provisionTopics } from "../../shared/kafka.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, defaultMinInsyncReplicas, feedTopicSpec, topicNames } from "../../shared/topics.ts";
import { adminKafka, namespaceOption } from "../cli.ts";

export function addTopicsCommand(program: Command): void {
  namespaceOption(
    program
      .command("topics")
      .description("create or update the core topics and the feed topic of each given partner")
      .option("--partner <id...>", "partner ids whose feed topics to provision", [])
      .option("--partitions <n>", "partitions of high-volume topics", String(LOCAL_TOPIC_PLAN.partitions))
      .option("--replication <n>", "replication factor (default: 3 on three brokers or more, else one per broker)")
      .option("--min-isr <n>", "min.insync.replicas (default: 2 from 3 replicas up, else 1)"),
  ).action(async (o: { partner: string[]; partitions: string; replication?: string; minIsr?: string; namespace: string }) => {
    const admin = adminKafka().admin();
    await admin.connect();
    try {
      const cluster = await clusterTopicPlan(admin, Number(o.partitions));
      const replicationFactor = o.replication === undefined ? cluster.replicationFactor : Number(o.replication);
      const plan = {
        partitions: Number(o.partitions),
        replicationFactor,
        minInsyncReplicas: o.minIsr === undefined ? defaultMinInsyncReplicas(replicationFactor) : Number(o.minIsr),
      };
      const names = topicNames(o.namespace);
      const result = await provisionTopics(admin, [...coreTopicSpecs(plan, names), ...o.partner.map((p) => feedTopicSpec(p, plan, names))]);
      console.log(`created: ${result.created.join(", ") || "none"}; updated: ${result.updated.join(", ") || "none"}`);
    } finally {
      await admin.disconnect();
    }
  });
}
