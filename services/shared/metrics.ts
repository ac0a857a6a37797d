/**
 * Prometheus metrics every service shares: its registry (with the process and Node.js defaults),
 * and the series counted on the hot path, once for all services: consumer rounds, records applied
 * and rejected by reason, signature failures, outbox relaying. Names follow Prometheus conventions
 * (the `hashrelay_` prefix, base units in the name, `_total` on counters) and labels take few
 * values: a reason code, a partner, a partition, a table; never a hash value, record or submission
 * id. Series that need SQL or a Kafka admin call are read at scrape time instead (scrape-sources.ts).
 * docs/operators.md lists every series.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { REASON_CODES } from "./errors.ts";
import type { ReasonCode } from "./errors.ts";
import type { RoundObserver } from "./exactly-once-consumer.ts";

/** A service's registry: what its /metrics serves. */
export function createRegistry(): Registry {
  const registry = new Registry();
  // The event-loop delay histogram samples every 100 ms rather than prom-client's 10 ms: a timer
  // firing 100 times a second was a large share of an idle service's CPU.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  return registry;
}

/** Refusals that mean a signature or its key did not pass the trust rules. */
export const SIGNATURE_REASONS: ReadonlySet<string> = new Set<ReasonCode>([
  "BAD_SIGNATURE",
  "UNKNOWN_KEY",
  "KEY_REVOKED",
  "KEY_EXPIRED",
  "KEY_NOT_YET_VALID",
  "KEY_OWNER_MISMATCH",
]);

/** What a stage did with the records it took in; every service counts in the same three series. */
export interface RecordMetrics {
  readonly applied: Counter;
  /** Redelivered or already applied: harmless, changed nothing. */
  readonly skipped: Counter;
  readonly rejected: Counter<"reason">;
  readonly signatureFailures: Counter<"reason">;
  /** Counts `n` rejections with `reason`, and as signature failures when the reason is one. */
  reject(reason: string, n?: number): void;
}

/** `what` names the records in the help text ("submissions", "feed records"). */
export function recordMetrics(registry: Registry, what: string): RecordMetrics {
  const rejected = new Counter({
    name: "hashrelay_records_rejected_total",
    help: `${what} rejected (dead-lettered, or refused by a partner sink), by reason code`,
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const signatureFailures = new Counter({
    name: "hashrelay_signature_failures_total",
    help: `${what} or requests whose signature or key did not pass the trust rules, by reason code`,
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  // Every reason starts at 0, so that the first rejection of a kind shows as an increase.
  for (const reason of REASON_CODES) rejected.labels(reason).inc(0);
  for (const reason of SIGNATURE_REASONS) signatureFailures.labels(reason).inc(0);
  return {
    applied: new Counter({ name: "hashrelay_records_applied_total", help: `${what} applied`, registers: [registry] }),
    skipped: new Counter({
      name: "hashrelay_records_skipped_total",
      help: `${what} left out as already applied (redelivered or replayed)`,
      registers: [registry],
    }),
    rejected,
    signatureFailures,
    reject(reason, n = 1) {
      if (n <= 0) return;
      rejected.labels(reason).inc(n);
      if (SIGNATURE_REASONS.has(reason)) signatureFailures.labels(reason).inc(n);
    },
  };
}

/** Counts `reasons` (one entry per rejected record) into `metrics`. */
export function countRejections(metrics: RecordMetrics, reasons: Iterable<string>): void {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  for (const [reason, n] of counts) metrics.reject(reason, n);
}

const ROUND_MESSAGE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
const ROUND_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The exactly-once consumer's rounds (exactly-once-consumer.ts observes them through this). */
export function consumerRoundMetrics(registry: Registry): RoundObserver {
  const messages = new Histogram({
    name: "hashrelay_consumer_round_messages",
    help: "Messages fetched per round (one PostgreSQL transaction over the partitions of one fetch)",
    buckets: ROUND_MESSAGE_BUCKETS,
    registers: [registry],
  });
  const seconds = new Histogram({
    name: "hashrelay_consumer_round_duration_seconds",
    help: "Time to apply and commit one round, from BEGIN to COMMIT",
    buckets: ROUND_SECONDS_BUCKETS,
    registers: [registry],
  });
  const failures = new Counter({
    name: "hashrelay_consumer_round_failures_total",
    help: "Rounds rolled back on an error (the round is fetched and applied again)",
    registers: [registry],
  });
  const restarts = new Counter({
    name: "hashrelay_consumer_restarts_total",
    help: "Times the Kafka consumer stopped for good and a fresh one was started",
    registers: [registry],
  });
  return {
    committed(n, elapsedSeconds) {
      messages.observe(n);
      seconds.observe(elapsedSeconds);
    },
    failed() {
      failures.inc();
    },
    restarted() {
      restarts.inc();
    },
  };
}

/** Rows the outbox relay published, per outbox table (outbox-relay.ts calls it after each send). */
export function outboxRelayedCounter(registry: Registry, table: string): (rows: number) => void {
  const relayed = new Counter({
    name: "hashrelay_outbox_relayed_messages_total",
    help: "Outbox rows published to Kafka (a crash between send and delete re-sends some)",
    labelNames: ["table"] as const,
    registers: [registry],
  }).labels(table);
  return (rows) => relayed.inc(rows);
}
