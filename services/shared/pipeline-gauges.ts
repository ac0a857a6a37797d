/**
 * The scrape-time gauges several services share, each over one read of pipeline-state.ts: a
 * consuming stage's lag and held partitions, an outbox's backlog, the dead-letter topic's size and
 * a kind of key's expiry. Each service registers the ones that are its own, so that no series is
 * exported by two services (an alert on it would fire twice).
 */
import type { Admin } from "kafkajs";
import { Gauge } from "prom-client";
import type { Registry } from "prom-client";
import type { RoundObserver } from "./exactly-once-consumer.ts";
import { consumerRoundMetrics, outboxRelayedCounter } from "./metrics.ts";
import { readKeyCoverage, readOutboxBacklog, readStageLag, readTopicDepth } from "./pipeline-state.ts";
import type { KeyCoverage, OutboxTable, RegistryKeyKind } from "./pipeline-state.ts";
import type { Queryable } from "./postgres.ts";
import type { ScrapeSources } from "./scrape-sources.ts";

/**
 * hashrelay_consumer_lag_messages{topic, partition}: messages on the topic the stage has not
 * applied, from the next offsets it stored in its own database.
 */
export function stageLagGauge(sources: ScrapeSources, o: { db: Queryable; admin: Admin; group: string; topic: string }): void {
  sources
    .source("consumer_lag", () => readStageLag(o.db, o.admin, o.group, o.topic))
    .gauge(
      {
        name: "hashrelay_consumer_lag_messages",
        help: "Messages on the consumed topic not yet applied: topic end offset minus the next offset stored in PostgreSQL",
        labelNames: ["topic", "partition"] as const,
      },
      (lags) => lags.map((l) => ({ labels: { topic: o.topic, partition: l.partition }, value: l.lag })),
    );
}

/** hashrelay_consumer_held_partitions: partitions the consumer holds (a halted feed partition). No I/O. */
export function heldPartitionsGauge(registry: Registry, held: () => number): void {
  new Gauge({
    name: "hashrelay_consumer_held_partitions",
    help: "Partitions the consumer holds and does not fetch (a partner sink's halted partitions)",
    registers: [registry],
    collect() {
      this.set(held());
    },
  });
}

/** hashrelay_outbox_messages{table} and hashrelay_outbox_oldest_age_seconds{table}. */
export function outboxGauges(sources: ScrapeSources, db: Queryable, table: OutboxTable): void {
  const backlog = sources.source(`outbox_${table}`, () => readOutboxBacklog(db, table));
  backlog.gauge(
    { name: "hashrelay_outbox_messages", help: "Rows waiting in the outbox table to be published", labelNames: ["table"] as const },
    (b) => [{ labels: { table }, value: b.messages }],
  );
  backlog.gauge(
    {
      name: "hashrelay_outbox_oldest_age_seconds",
      help: "How long the oldest row in the outbox table has waited; 0 when it is empty",
      labelNames: ["table"] as const,
    },
    (b) => [{ labels: { table }, value: b.oldestAgeSeconds }],
  );
}

/** hashrelay_dead_letter_messages: messages held on the dead-letter topic (end minus start offsets). */
export function deadLetterGauge(sources: ScrapeSources, admin: Admin, topic: string): void {
  sources
    .source("dead_letter", () => readTopicDepth(admin, topic))
    .gauge({ name: "hashrelay_dead_letter_messages", help: "Messages held on the dead-letter topic (hashes.rejected.v1)" }, (n) => [
      { value: n },
    ]);
}

/**
 * hashrelay_key_expiry_seconds{kind} and hashrelay_key_owners_without_valid_key{kind}, from a
 * coverage read (the hub's registry, or a sink's trusted hub keys).
 */
export function keyExpiryGauges(sources: ScrapeSources, kind: string, read: () => Promise<KeyCoverage>): void {
  const coverage = sources.source(`key_expiry_${kind}`, read);
  coverage.gauge(
    {
      name: "hashrelay_key_expiry_seconds",
      help: "Seconds until the first owner of this kind of key is left without a valid one (+Inf: none will be)",
      labelNames: ["kind"] as const,
    },
    (c) => [{ labels: { kind }, value: c.expirySeconds }],
  );
  coverage.gauge(
    {
      name: "hashrelay_key_owners_without_valid_key",
      help: "Owners of this kind of key with none valid now (expired, revoked or not yet valid)",
      labelNames: ["kind"] as const,
    },
    (c) => [{ labels: { kind }, value: c.ownersWithoutValidKey }],
  );
}

/** keyExpiryGauges over the hub's key registry. */
export function registryKeyGauges(sources: ScrapeSources, db: Queryable, kind: RegistryKeyKind): void {
  keyExpiryGauges(sources, kind, () => readKeyCoverage(db, kind));
}

/** What dedup and distribution both report as a hub stage: lag, outbox backlog, rounds, rows relayed. */
export function hubStageMetrics(
  registry: Registry,
  sources: ScrapeSources,
  o: { db: Queryable; admin: Admin; group: string; topic: string; outbox: OutboxTable },
): { readonly rounds: RoundObserver; readonly relayed: (rows: number) => void } {
  stageLagGauge(sources, o);
  outboxGauges(sources, o.db, o.outbox);
  return { rounds: consumerRoundMetrics(registry), relayed: outboxRelayedCounter(registry, o.outbox) };
}
