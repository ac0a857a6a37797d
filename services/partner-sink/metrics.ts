/**
 * The partner sink's Prometheus metrics: feed records applied, skipped as duplicates and refused by
 * reason (signature failures among them), its consumer rounds; at scrape time its lag on the feed
 * topic, each feed partition's head seq and whether it is halted (from feed_state), and how long
 * the trusted hub keys (HUB_PUBLIC_KEYS) stay valid. docs/operators.md and docs/partners.md list them.
 */
import type { Admin } from "kafkajs";
import type { Registry } from "prom-client";
import type { RoundObserver } from "../shared/exactly-once-consumer.ts";
import type { Logger } from "../shared/logging.ts";
import { consumerRoundMetrics, countRejections, createRegistry, recordMetrics } from "../shared/metrics.ts";
import type { RecordMetrics } from "../shared/metrics.ts";
import { heldPartitionsGauge, keyExpiryGauges, stageLagGauge } from "../shared/pipeline-gauges.ts";
import { keyCoverage } from "../shared/pipeline-state.ts";
import type { Queryable } from "../shared/postgres.ts";
import { ScrapeSources } from "../shared/scrape-sources.ts";
import type { SinkResult } from "./applier.ts";
import type { TrustedHubKey } from "./verifier.ts";

export interface SinkMetrics {
  readonly registry: Registry;
  readonly records: RecordMetrics;
  readonly rounds: RoundObserver;
  /** Counts a committed round's outcome, partition by partition. */
  counted(result: ReadonlyMap<number, SinkResult>): void;
}

export interface SinkMetricSources {
  readonly db: Queryable;
  readonly admin: Admin;
  readonly group: string;
  readonly topic: string;
  readonly keys: () => readonly TrustedHubKey[];
  /** Partitions the consumer holds (set once it runs). */
  readonly held: () => number;
  readonly logger: Logger;
}

interface PartitionRow {
  readonly partition: number;
  readonly last_seq: string;
  readonly halted: boolean;
}

export function createSinkMetrics(o: SinkMetricSources): SinkMetrics {
  const registry = createRegistry();
  const records = recordMetrics(registry, "Feed records");
  const sources = new ScrapeSources(registry, o.logger);
  stageLagGauge(sources, o);
  heldPartitionsGauge(registry, o.held);
  const partitions = sources.source("feed_state", async () => {
    const { rows } = await o.db.query<PartitionRow>(
      "SELECT partition, last_seq::text, halted_reason IS NOT NULL AS halted FROM feed_state ORDER BY partition",
    );
    return rows;
  });
  partitions.gauge(
    {
      name: "hashrelay_sink_halted_partitions",
      help: "Feed partitions halted by a gap or a broken chain, held until an operator resumes them (hashrelay-sink status)",
    },
    (rows) => [{ value: rows.filter((r) => r.halted).length }],
  );
  partitions.gauge(
    {
      name: "hashrelay_sink_head_seq",
      help: "Seq of the last feed record applied on a partition (compare with the hub's hashrelay_feed_head_seq)",
      labelNames: ["partition"] as const,
    },
    (rows) => rows.map((r) => ({ labels: { partition: r.partition }, value: Number(r.last_seq) })),
  );
  // The trusted keys are configuration: coverage of one owner, the hub.
  keyExpiryGauges(sources, "hub", async () =>
    keyCoverage(
      o.keys().map((k) => ({ ownerId: "hub", validFrom: null, validUntil: k.validUntil })),
      new Date(),
    ),
  );
  return {
    registry,
    records,
    rounds: consumerRoundMetrics(registry),
    counted(result) {
      for (const r of result.values()) {
        records.applied.inc(r.applied);
        records.skipped.inc(r.duplicates);
        countRejections(records, r.refusals);
      }
    },
  };
}
