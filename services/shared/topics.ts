/** Topic names and their settings: provisioning as code, so every environment gets the same. */

export const TOPICS = {
  submitted: "hashes.submitted.v1",
  rejected: "hashes.rejected.v1",
  canonical: "hashes.canonical.v1",
  audit: "audit.v1",
} as const;

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  readonly configs: Record<string, string>;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export interface TopicPlanOptions {
  /** Partitions for the high-volume topics (submitted, canonical, feeds). */
  readonly partitions: number;
  readonly replicationFactor: number;
  /** min.insync.replicas; 1 on a single local broker, 2 in production. */
  readonly minInsyncReplicas: number;
}

export const LOCAL_TOPIC_PLAN: TopicPlanOptions = { partitions: 6, replicationFactor: 1, minInsyncReplicas: 1 };

export function coreTopicSpecs(o: TopicPlanOptions): TopicSpec[] {
  const base = { replicationFactor: o.replicationFactor };
  const durable = { "min.insync.replicas": String(o.minInsyncReplicas) };
  return [
    {
      ...base,
      topic: TOPICS.submitted,
      numPartitions: o.partitions,
      // Long enough to re-drive dedup from scratch after an incident.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(30 * DAY_MS) },
    },
    {
      ...base,
      topic: TOPICS.rejected,
      numPartitions: 3,
      // Rejections wait for a human: keep them long.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(90 * DAY_MS) },
    },
    {
      ...base,
      topic: TOPICS.canonical,
      numPartitions: o.partitions,
      // Compacted by recordId. Tombstone-like records (deleted=true) stay as values, never null,
      // and delete.retention.ms keeps any null-key deletes long enough for the slowest consumer.
      configs: {
        ...durable,
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": String(DAY_MS),
        "delete.retention.ms": String(30 * DAY_MS),
      },
    },
    {
      ...base,
      topic: TOPICS.audit,
      numPartitions: 3,
      // DPA 2018 s.62 logs are kept for a long period; the audit archive keeps them beyond this.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(365 * DAY_MS) },
    },
  ];
}

export function feedTopic(partnerId: string): string {
  if (!/^[a-z0-9][a-z0-9-]{1,62}$/.test(partnerId)) throw new Error(`invalid partner id ${JSON.stringify(partnerId)}`);
  return `feed.${partnerId}.v1`;
}

export function feedTopicSpec(partnerId: string, o: TopicPlanOptions): TopicSpec {
  return {
    topic: feedTopic(partnerId),
    numPartitions: o.partitions,
    replicationFactor: o.replicationFactor,
    // A feed is a log, not a table: REMOVE tombstones must outlive the slowest partner's lag, so
    // nothing is compacted and retention is long; new partners bootstrap from S3 snapshots.
    configs: {
      "min.insync.replicas": String(o.minInsyncReplicas),
      "cleanup.policy": "delete",
      "retention.ms": String(90 * DAY_MS),
    },
  };
}
