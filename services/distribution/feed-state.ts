/**
 * Where each partner's feed stands, read from the hub's database and the broker: the head of each
 * feed partition's chain, how far each Kafka partner's sink is behind (from the offsets the sink
 * commits to its consumer group: the hub cannot read a partner's database), and how old each S3
 * partner's latest export is and what waits for the next one. distribution's /metrics reads these
 * at scrape time; an operator's console can read the same.
 */
import type { Admin } from "kafkajs";
import { feedLag } from "../shared/feed-lag.ts";
import type { PartitionLag } from "../shared/feed-lag.ts";
import { consumerGroups } from "../shared/kafka-access.ts";
import type { Queryable } from "../shared/postgres.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { PartnerPolicy } from "./policy.ts";

export interface FeedHead {
  readonly partnerId: string;
  readonly partition: number;
  /** Seq of the last record issued on the partition: the head of its hash chain. */
  readonly lastSeq: number;
}

export async function readFeedHeads(db: Queryable): Promise<FeedHead[]> {
  const { rows } = await db.query<{ partner_id: string; partition: number; last_seq: string }>(
    "SELECT partner_id, partition, last_seq::text FROM feed_partitions ORDER BY partner_id, partition",
  );
  return rows.map((r) => ({ partnerId: r.partner_id, partition: r.partition, lastSeq: Number(r.last_seq) }));
}

export interface PartnerFeedLag {
  readonly partnerId: string;
  readonly partitions: readonly PartitionLag[];
  /** A partition's position fell below the log start: records (tombstones too) the partner never read are gone. */
  readonly lost: boolean;
}

/** How far each Kafka-delivered partner's sink is behind its feed topic. */
export async function readPartnerLag(
  admin: Admin,
  topics: TopicNames,
  namespace: string,
  policies: readonly PartnerPolicy[],
): Promise<PartnerFeedLag[]> {
  const partners = policies.filter((p) => p.delivery !== "s3").map((p) => p.partnerId);
  return Promise.all(
    partners.map(async (partnerId) => {
      const topic = topics.feed(partnerId);
      const [ends, [offsets]] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId: consumerGroups(namespace).sink(partnerId), topics: [topic] }),
      ]);
      const report = feedLag(ends, new Map((offsets?.partitions ?? []).map((p) => [p.partition, p.offset])));
      return { partnerId, partitions: report.partitions, lost: report.lost };
    }),
  );
}

export interface ExportStatus {
  readonly partnerId: string;
  /** Seconds since the latest snapshot or delta was written; +Inf when none ever was. */
  readonly ageSeconds: number;
  /** Feed records issued since the last delta, waiting for the next. */
  readonly pendingRecords: number;
}

/** Export age and backlog of each S3-delivered partner. */
export async function readExportStatus(db: Queryable, policies: readonly PartnerPolicy[]): Promise<ExportStatus[]> {
  const partners = policies.filter((p) => p.delivery !== "kafka").map((p) => p.partnerId);
  if (partners.length === 0) return [];
  const { rows } = await db.query<{ partner_id: string; age: number | null; pending: string }>(
    `SELECT p.partner_id,
            (SELECT extract(epoch FROM now() - max(e.created_at))::float8 FROM feed_exports e WHERE e.partner_id = p.partner_id) AS age,
            (SELECT count(*) FROM feed_log l WHERE l.partner_id = p.partner_id)::text AS pending
       FROM unnest($1::text[]) AS p(partner_id)`,
    [partners],
  );
  return rows.map((r) => ({
    partnerId: r.partner_id,
    ageSeconds: r.age === null ? Number.POSITIVE_INFINITY : Math.max(0, r.age),
    pendingRecords: Number(r.pending),
  }));
}
