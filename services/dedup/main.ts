/**
 * dedup: consumes hashes.submitted.v1, verifies every signature, and keeps the canonical store;
 * changed records leave through the outbox to hashes.canonical.v1 (compacted, keyed by recordId).
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { AvroCodec } from "../shared/wire/codec.ts";
import { commonConfigShape, effectiveEnv, loadConfig, opsHost, opsPort } from "../shared/config.ts";
import { consumerGroups, servicePrincipal } from "../shared/kafka-access.ts";
import { DEDUP_APPLY_LOCK, DEDUP_RELAY_LOCK } from "../shared/advisory-locks.ts";
import { consumerTuning, startExactlyOnceConsumer } from "../shared/exactly-once-consumer.ts";
import { PgKeyRegistry } from "../shared/key-registry.ts";
import {
  connectedAdmin,
  connectedProducer,
  onShutdown,
  openDatabase,
  reachable,
  runMain,
  serviceKafka,
  stopInOrder,
} from "../shared/lifecycle.ts";
import { createLogger } from "../shared/logging.ts";
import { startOpsServer } from "../shared/ops-http.ts";
import { OutboxRelay } from "../shared/outbox-relay.ts";
import { SHARED_MIGRATIONS } from "../shared/postgres.ts";
import { topicNames } from "../shared/topics.ts";
import { DEFAULT_DEGENERATE_PERCEPTUAL_RECORDS, valuePrefix } from "./degenerate.ts";
import { createDedupMetrics } from "./metrics.ts";
import { IndexedNearDuplicateLinker } from "./near-duplicate-linker.ts";
import { PHOTODNA_DEFAULT_THRESHOLD } from "./near-duplicates/photodna-index.ts";
import { SERVICE, applyBatch, verifyBatch } from "./processor.ts";
import { registeredGradingAuthorities } from "./store.ts";
import type { DedupDeps } from "./processor.ts";

export const DEDUP_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

const SERVICE_NAME = "dedup";

/** Every variable the service reads, validated at start-up (infra/deploy manifests are checked against it). */
export const configShape = {
  ...commonConfigShape,
  /** Dedup paces the pipeline at a trickle: what it applies together travels on together. */
  CONSUMER_TRICKLE_INTERVAL_MS: z.coerce.number().int().min(0).max(1_000).default(150),
  /** Defaults to the namespaced group the ACLs grant ("[<ns>.]hashrelay-dedup"). */
  DEDUP_CONSUMER_GROUP: z.string().min(1).optional(),
  /** Comma-separated agency ids whose grade is authoritative (besides those flagged in the registry). */
  DEDUP_GRADING_AUTHORITIES: z.string().default(""),
  DEDUP_CONFIRMATIONS: z.coerce.number().int().min(1).default(2),
  DEDUP_PHOTODNA_THRESHOLD: z.coerce.number().int().positive().default(PHOTODNA_DEFAULT_THRESHOLD),
  DEDUP_MAX_SUBMISSION_AGE_DAYS: z.coerce.number().positive().default(30),
  /** A perceptual value carried by this many distinct canonical records is degenerate (kept out of matching and feeds). */
  DEDUP_DEGENERATE_PERCEPTUAL_RECORDS: z.coerce.number().int().min(2).default(DEFAULT_DEGENERATE_PERCEPTUAL_RECORDS),
  /** Where /metrics, /healthz and /readyz answer (dedup has no other HTTP endpoint). */
  DEDUP_METRICS_HOST: opsHost,
  DEDUP_METRICS_PORT: opsPort,
};

export type DedupConfig = z.infer<z.ZodObject<typeof configShape>>;
/** What callers pass: defaults may be left out; validated on start. */
export type DedupConfigInput = z.input<z.ZodObject<typeof configShape>>;

export interface RunningDedup {
  readonly deps: DedupDeps;
  /** Where /metrics, /healthz and /readyz answer. */
  readonly opsUrl: string;
  stop(): Promise<void>;
}

export async function startDedup(input: DedupConfigInput): Promise<RunningDedup> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const logger = createLogger(SERVICE, config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { max: 6, applicationName: "hashrelay-dedup" }, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    { namespace: "dedup", dir: DEDUP_MIGRATIONS },
  ]);
  const configured = config.DEDUP_GRADING_AUTHORITIES.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const authorities = new Set([...(await registeredGradingAuthorities(pool)), ...configured]);
  const nearDuplicates = new IndexedNearDuplicateLinker({ photodnaThreshold: config.DEDUP_PHOTODNA_THRESHOLD });
  const client = await pool.connect();
  try {
    await nearDuplicates.catchUp(client); // rebuild the index from PostgreSQL before consuming
  } finally {
    client.release();
  }
  const deps: DedupDeps = {
    pool,
    codec: new AvroCodec(),
    keys: new PgKeyRegistry(pool),
    policy: { authorities, confirmations: config.DEDUP_CONFIRMATIONS },
    topics: topicNames(config.TOPIC_NAMESPACE),
    consumerGroup: config.DEDUP_CONSUMER_GROUP ?? consumerGroups(config.TOPIC_NAMESPACE).dedup,
    nearDuplicates,
    logger,
    maxSubmissionAgeMs: config.DEDUP_MAX_SUBMISSION_AGE_DAYS * 86_400_000,
    degeneratePerceptualRecords: config.DEDUP_DEGENERATE_PERCEPTUAL_RECORDS,
  };
  const kafka = serviceKafka(config, "hashrelay-dedup", logger);
  const producer = await connectedProducer(kafka);
  const admin = await connectedAdmin(kafka);
  const metrics = createDedupMetrics({ db: pool, admin, group: deps.consumerGroup, topic: deps.topics.submitted, logger });
  const relay = new OutboxRelay({ pool, producer, logger, lockId: DEDUP_RELAY_LOCK, onRelayed: metrics.relayed });
  relay.start();
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool,
    groupId: deps.consumerGroup,
    topic: deps.topics.submitted,
    logger,
    applyLock: DEDUP_APPLY_LOCK,
    prepare: (batch) => verifyBatch(deps, batch),
    apply: (tx, batch) => applyBatch(deps, tx, batch),
    observer: metrics.rounds,
    afterCommit: ({ result: r, partitions }) => {
      metrics.counted(r);
      const counts = { applied: r.applied, rejected: r.rejected, skipped: r.skipped, records: r.records.length };
      logger.info({ partitions: partitions.map((p) => p.partition), ...counts }, "batch applied");
      for (const d of r.degenerate) {
        const value = { alg: d.alg, valuePrefix: valuePrefix(d.value), reason: d.reason, records: d.records };
        logger.warn(value, "perceptual value degenerate: kept out of near-duplicate matching and partner feeds");
      }
      relay.handOff(r.queued);
    },
    ...consumerTuning(config),
  });
  const ops = await startOpsServer({
    host: config.DEDUP_METRICS_HOST,
    port: config.DEDUP_METRICS_PORT,
    registry: metrics.registry,
    logger,
    ready: reachable(pool, admin, [deps.topics.submitted]),
  });
  logger.info(
    { authorities: [...authorities], indexedNearDuplicateHashes: nearDuplicates.indexedHashes, metricsUrl: ops.url },
    "dedup running",
  );
  // The consumer's disconnect waits for the batch in hand to commit or roll back.
  const stop = stopInOrder({ intake: [() => ops.close(), () => consumer.disconnect()], relay, kafka: [producer, admin], pool });
  return { deps, opsUrl: ops.url, stop };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain(SERVICE, async () => {
    const config = loadConfig(SERVICE, configShape, effectiveEnv(process.env, servicePrincipal("dedup")));
    const running = await startDedup(config);
    onShutdown(createLogger(SERVICE, config.LOG_LEVEL), running.stop);
  });
}
