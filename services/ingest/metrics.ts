/** Prometheus metrics of the ingest service. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface IngestMetrics {
  readonly registry: Registry;
  readonly items: Counter<"channel" | "status" | "reason">;
  readonly requestSeconds: Histogram<"route" | "status">;
}

export function createIngestMetrics(): IngestMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "hashrelay_ingest_" });
  return {
    registry,
    items: new Counter({
      name: "hashrelay_ingest_items_total",
      help: "Submissions handled, by channel, outcome and reason code",
      labelNames: ["channel", "status", "reason"],
      registers: [registry],
    }),
    requestSeconds: new Histogram({
      name: "hashrelay_ingest_request_seconds",
      help: "HTTP request latency",
      labelNames: ["route", "status"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
