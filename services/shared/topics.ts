/** Topic names and their settings: provisioning as code, so every environment gets the same. */

export interface TopicNames {
  readonly submitted: string;
  readonly rejected: string;
  readonly canonical: string;
  readonly audit: string;
  /** What every feed topic's name starts with ("<ns>.feed."): the distribution ACL's prefix. */
  readonly feedPrefix: string;
  feed(partnerId: string): string;
  /** What every partner feedback topic's name starts with ("<ns>.feedback."): distribution reads them all. */
  readonly feedbackPrefix: string;
  /** The topic only this partner may write its feedback to (PartnerFeedback records). */
  feedback(partnerId: string): string;
}

const PARTNER_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;

/**
 * The topic names, optionally under a namespace prefix ("<ns>.hashes.submitted.v1"): one broker
 * can then host isolated pipelines, which the integration tests rely on.
 */
export function topicNames(namespace = ""): TopicNames {
  if (namespace && !/^[a-z0-9][a-z0-9-]{0,40}$/.test(namespace)) throw new Error(`invalid topic namespace ${JSON.stringify(namespace)}`);
  const p = namespace ? `${namespace}.` : "";
  return {
    submitted: `${p}hashes.submitted.v1`,
    rejected: `${p}hashes.rejected.v1`,
    canonical: `${p}hashes.canonical.v1`,
    audit: `${p}audit.v1`,
    feedPrefix: `${p}feed.`,
    feed(partnerId: string): string {
      if (!PARTNER_ID.test(partnerId)) throw new Error(`invalid partner id ${JSON.stringify(partnerId)}`);
      return `${p}feed.${partnerId}.v1`; // starts with feedPrefix
    },
    feedbackPrefix: `${p}feedback.`,
    feedback(partnerId: string): string {
      if (!PARTNER_ID.test(partnerId)) throw new Error(`invalid partner id ${JSON.stringify(partnerId)}`);
      return `${p}feedback.${partnerId}.v1`; // starts with feedbackPrefix, never with feedPrefix ("feed.")
    },
  };
}

export const TOPICS: TopicNames = topicNames();

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

/**
 * The usual durability for a replication factor: with 3 or more replicas an acknowledged write is
 * on at least 2 brokers, so losing one loses nothing; with fewer, requiring every replica would stop
 * all writes whenever one broker is down.
 */
export function defaultMinInsyncReplicas(replicationFactor: number): number {
  return replicationFactor >= 3 ? 2 : 1;
}

/**
 * The plan for a cluster of `brokers` brokers: three replicas wherever there are three or more (one
 * broker can then be down without losing an acknowledged write), else one on each broker.
 */
export function topicPlanForBrokers(brokers: number, partitions: number = LOCAL_TOPIC_PLAN.partitions): TopicPlanOptions {
  if (!Number.isInteger(brokers) || brokers < 1) throw new Error(`a cluster has at least one broker, not ${brokers}`);
  const replicationFactor = Math.min(3, brokers);
  return { partitions, replicationFactor, minInsyncReplicas: defaultMinInsyncReplicas(replicationFactor) };
}

export function coreTopicSpecs(o: TopicPlanOptions, names: TopicNames = TOPICS): TopicSpec[] {
  const base = { replicationFactor: o.replicationFactor };
  const durable = { "min.insync.replicas": String(o.minInsyncReplicas) };
  return [
    {
      ...base,
      topic: names.submitted,
      numPartitions: o.partitions,
      // Long enough to re-drive dedup from scratch after an incident.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(30 * DAY_MS) },
    },
    {
      ...base,
      topic: names.rejected,
      numPartitions: 3,
      // Rejections wait for a human: keep them long.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(90 * DAY_MS) },
    },
    {
      ...base,
      topic: names.canonical,
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
      topic: names.audit,
      numPartitions: 3,
      // DPA 2018 s.62 logs are kept for a long period; the audit archive keeps them beyond this.
      configs: { ...durable, "cleanup.policy": "delete", "retention.ms": String(365 * DAY_MS) },
    },
  ];
}

export function feedTopicSpec(partnerId: string, o: TopicPlanOptions, names: TopicNames = TOPICS): TopicSpec {
  return {
    topic: names.feed(partnerId),
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

/** A partner's feedback topic: few records, kept long enough for the hub to be down for weeks. */
export function feedbackTopicSpec(partnerId: string, o: TopicPlanOptions, names: TopicNames = TOPICS): TopicSpec {
  return {
    topic: names.feedback(partnerId),
    numPartitions: 3,
    replicationFactor: o.replicationFactor,
    configs: {
      "min.insync.replicas": String(o.minInsyncReplicas),
      "cleanup.policy": "delete",
      "retention.ms": String(30 * DAY_MS),
    },
  };
}
