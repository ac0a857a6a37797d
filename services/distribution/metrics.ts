/**
 * distribution's Prometheus metrics: canonical revisions applied, skipped and rejected, feed
 * records issued per partner, its consumer rounds; at scrape time its lag on hashes.canonical.v1,
 * the feed outbox's backlog, each feed partition's head seq, each Kafka partner's lag, each S3
 * partner's export age and backlog, and the hub keys' expiry. docs/operators.md lists every series.
 */
import type { Admin } from "kafkajs";
import { Counter, Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { RoundObserver } from "../shared/exactly-once-consumer.ts";
import type { Logger } from "../shared/logging.ts";
import { countRejections, createRegistry, recordMetrics } from "../shared/metrics.ts";
import type { RecordMetrics } from "../shared/metrics.ts";
import { hubStageMetrics, registryKeyGauges } from "../shared/pipeline-gauges.ts";
import type { Queryable } from "../shared/postgres.ts";
import { ScrapeSources } from "../shared/scrape-sources.ts";
import type { TopicNames } from "../shared/topics.ts";
import { readExportStatus, readFeedHeads, readPartnerLag } from "./feed-state.ts";
import type { PartnerPolicy } from "./policy.ts";
import type { DistributionResult } from "./processor.ts";

export interface DistributionMetrics {
  readonly registry: Registry;
  readonly records: RecordMetrics;
  readonly rounds: RoundObserver;
  readonly relayed: (rows: number) => void;
  /** Counts a committed round's outcome. */
  counted(result: DistributionResult): void;
}

export interface DistributionMetricSources {
  readonly db: Queryable;
  readonly admin: Admin;
  readonly topics: TopicNames;
  readonly namespace: string;
  readonly group: string;
  readonly policies: () => readonly PartnerPolicy[];
  /** DISTRIBUTION_EXPORT_INTERVAL_MS: what an export's age is judged against (0: exports are off). */
  readonly exportIntervalMs: number;
  readonly logger: Logger;
}

export function createDistributionMetrics(o: DistributionMetricSources): DistributionMetrics {
  const registry = createRegistry();
  const records = recordMetrics(registry, "Canonical record revisions");
  const issued = new Counter({
    name: "hashrelay_feed_records_issued_total",
    help: "Feed records signed and queued for a partner, by operation (UPSERT or REMOVE)",
    labelNames: ["partner", "op"] as const,
    registers: [registry],
  });
  const sources = new ScrapeSources(registry, o.logger);
  const stage = hubStageMetrics(registry, sources, {
    db: o.db,
    admin: o.admin,
    group: o.group,
    topic: o.topics.canonical,
    outbox: "feed_outbox",
  });
  registryKeyGauges(sources, o.db, "hub");
  feedGauges(registry, sources, o);
  return {
    registry,
    records,
    ...stage,
    counted(result) {
      records.applied.inc(result.records);
      records.skipped.inc(result.skipped);
      countRejections(records, result.rejectionReasons);
      for (const d of result.issued) issued.labels(d.partnerId, d.op).inc();
    },
  };
}

function feedGauges(registry: Registry, sources: ScrapeSources, o: DistributionMetricSources): void {
  sources
    .source("feed_heads", () => readFeedHeads(o.db))
    .gauge(
      {
        name: "hashrelay_feed_head_seq",
        help: "Seq of the last record issued on a partner's feed partition (the head of its hash chain)",
        labelNames: ["partner", "partition"] as const,
      },
      (heads) => heads.map((h) => ({ labels: { partner: h.partnerId, partition: h.partition }, value: h.lastSeq })),
    );
  const lag = sources.source("partner_lag", () => readPartnerLag(o.admin, o.topics, o.namespace, o.policies()));
  lag.gauge(
    {
      name: "hashrelay_partner_lag_messages",
      help: "Feed records a Kafka partner's sink has not applied, from the offsets it commits to its consumer group",
      labelNames: ["partner", "partition"] as const,
    },
    (all) => all.flatMap((p) => p.partitions.map((x) => ({ labels: { partner: p.partnerId, partition: x.partition }, value: x.lag }))),
  );
  lag.gauge(
    {
      name: "hashrelay_partner_feed_lost",
      help: "1 when a partner's position fell below its feed's log start: records it never read are gone; re-bootstrap it",
      labelNames: ["partner"] as const,
    },
    (all) => all.map((p) => ({ labels: { partner: p.partnerId }, value: p.lost ? 1 : 0 })),
  );
  const exports = sources.source("feed_exports", () => readExportStatus(o.db, o.policies()));
  exports.gauge(
    {
      name: "hashrelay_feed_export_age_seconds",
      help: "Seconds since an S3 partner's latest snapshot or delta was written (+Inf: never)",
      labelNames: ["partner"] as const,
    },
    (all) => all.map((e) => ({ labels: { partner: e.partnerId }, value: e.ageSeconds })),
  );
  exports.gauge(
    {
      name: "hashrelay_feed_export_pending_records",
      help: "Feed records issued to an S3 partner since its last delta, waiting for the next export",
      labelNames: ["partner"] as const,
    },
    (all) => all.map((e) => ({ labels: { partner: e.partnerId }, value: e.pendingRecords })),
  );
  new Gauge({
    name: "hashrelay_feed_export_interval_seconds",
    help: "Configured time between S3 export rounds (DISTRIBUTION_EXPORT_INTERVAL_MS); 0: exports are off",
    registers: [registry],
  }).set(o.exportIntervalMs / 1000);
}
