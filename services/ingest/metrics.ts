/**
 * Prometheus metrics of the ingest service: items admitted by channel, outcome and reason, request
 * latency, rejections and signature failures in the series every service shares, and at scrape
 * time the dead-letter topic's size and how long the agencies' keys stay valid. docs/operators.md
 * lists every series.
 */
import type { Admin } from "kafkajs";
import { Counter, Histogram } from "prom-client";
import type { Registry } from "prom-client";
import type { Logger } from "../shared/logging.ts";
import { createRegistry, recordMetrics } from "../shared/metrics.ts";
import type { RecordMetrics } from "../shared/metrics.ts";
import { deadLetterGauge, registryKeyGauges } from "../shared/pipeline-gauges.ts";
import type { Queryable } from "../shared/postgres.ts";
import { ScrapeSources } from "../shared/scrape-sources.ts";

export interface IngestMetrics {
  readonly registry: Registry;
  readonly items: Counter<"channel" | "status" | "reason">;
  readonly requestSeconds: Histogram<"route" | "status">;
  readonly records: RecordMetrics;
  /** Counts what admitBatch decided for each item of one request or import. */
  admitted(channel: string, outcomes: readonly { status: string; reason?: string | null }[]): void;
}

/** What the scrape-time gauges read; left out (unit tests), the registry has only the hot-path series. */
export interface IngestMetricSources {
  readonly db: Queryable;
  readonly admin: Admin;
  readonly deadLetterTopic: string;
  readonly logger: Logger;
}

export function createIngestMetrics(sources?: IngestMetricSources): IngestMetrics {
  const registry = createRegistry();
  const items = new Counter({
    name: "hashrelay_ingest_items_total",
    help: "Submissions handled, by channel, outcome and reason code",
    labelNames: ["channel", "status", "reason"] as const,
    registers: [registry],
  });
  const records = recordMetrics(registry, "Submissions");
  if (sources) {
    const scrape = new ScrapeSources(registry, sources.logger);
    deadLetterGauge(scrape, sources.admin, sources.deadLetterTopic);
    registryKeyGauges(scrape, sources.db, "agency");
  }
  return {
    registry,
    items,
    requestSeconds: new Histogram({
      name: "hashrelay_ingest_request_seconds",
      help: "HTTP request latency",
      labelNames: ["route", "status"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    records,
    admitted(channel, outcomes) {
      for (const o of outcomes) {
        items.labels(channel, o.status, o.reason ?? "").inc();
        if (o.status === "accepted") records.applied.inc();
        else if (o.status === "duplicate") records.skipped.inc();
        else if (o.reason) records.reject(o.reason);
      }
    },
  };
}
