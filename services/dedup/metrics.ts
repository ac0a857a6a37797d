/**
 * dedup's Prometheus metrics: submissions applied, skipped and rejected by reason (signature
 * failures among them), its consumer rounds, and at scrape time its lag on hashes.submitted.v1
 * and the backlog of its outbox. docs/operators.md lists every series.
 */
import type { Admin } from "kafkajs";
import type { Registry } from "prom-client";
import type { RoundObserver } from "../shared/exactly-once-consumer.ts";
import type { Logger } from "../shared/logging.ts";
import { countRejections, createRegistry, recordMetrics } from "../shared/metrics.ts";
import type { RecordMetrics } from "../shared/metrics.ts";
import { hubStageMetrics } from "../shared/pipeline-gauges.ts";
import type { Queryable } from "../shared/postgres.ts";
import { ScrapeSources } from "../shared/scrape-sources.ts";
import type { BatchResult } from "./processor.ts";

export interface DedupMetrics {
  readonly registry: Registry;
  readonly records: RecordMetrics;
  readonly rounds: RoundObserver;
  readonly relayed: (rows: number) => void;
  /** Counts a committed round's outcome. */
  counted(result: BatchResult): void;
}

export function createDedupMetrics(o: { db: Queryable; admin: Admin; group: string; topic: string; logger: Logger }): DedupMetrics {
  const registry = createRegistry();
  const records = recordMetrics(registry, "Submissions");
  const sources = new ScrapeSources(registry, o.logger);
  return {
    registry,
    records,
    ...hubStageMetrics(registry, sources, { ...o, outbox: "outbox" }),
    counted(result) {
      records.applied.inc(result.applied);
      records.skipped.inc(result.skipped);
      countRejections(records, result.rejectionReasons);
    },
  };
}
