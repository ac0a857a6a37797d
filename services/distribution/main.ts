/**
 * distribution: consumes hashes.canonical.v1 and issues each partner's filtered, minimised,
 * hub-signed feed: Kafka topic feed.<partner>.v1 and/or S3 snapshots and deltas.
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { DISTRIBUTION_RELAY_LOCK } from "../shared/advisory-locks.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { commonConfigShape, effectiveEnv, loadConfig, opsHost, opsPort, s3ConfigShape } from "../shared/config.ts";
import { consumerGroups, servicePrincipal } from "../shared/kafka-access.ts";
import { consumerTuning, startExactlyOnceConsumer } from "../shared/exactly-once-consumer.ts";
import { topicReplication } from "../shared/kafka.ts";
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
import { releaseAfterBursts, releaseEvery } from "../shared/release-memory.ts";
import { createS3Client } from "../shared/s3.ts";
import { topicNames } from "../shared/topics.ts";
import { PgKeyRegistry } from "../shared/key-registry.ts";
import { feedExportDeps, s3Exports, scheduleExports } from "./export-schedule.ts";
import { feedbackConsumers } from "./feedback-consumers.ts";
import { applyReviewDecisions, backfillDisclosedRefs } from "./feedback-processor.ts";
import type { ExportNow } from "./export-schedule.ts";
import { loadHubSigner } from "./hub-signer.ts";
import { createDistributionMetrics } from "./metrics.ts";
import { feedTopicPlan, policyRefresh, schedulePolicyRefresh } from "./policy-refresh.ts";
import { isActivePolicy } from "./policy-store.ts";
import { SERVICE, backfillHashClaims, canonicalStep, reconcilePartner } from "./processor.ts";
import type { DistributionDeps } from "./processor.ts";

export const DISTRIBUTION_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

const SERVICE_NAME = "distribution";
/** Quiet time after the last policy change or reconciliation before freed memory is released (release-memory.ts). */
const RELEASE_AFTER_POLICY_CHANGE_MS = 10_000;
/**
 * Reconciliation slices (500 records each) between two releases of freed memory: the peak of a
 * policy change stays near that of 4,000 records whatever the data (docs/benchmarks.md).
 */
const RECONCILE_SLICES_PER_RELEASE = 8;

/** Every variable the service reads, validated at start-up (infra/deploy manifests are checked against it). */
export const configShape = {
  ...commonConfigShape,
  ...s3ConfigShape,
  HUB_KEY_ID: z.string().min(1),
  HUB_SIGNING_KEY_FILE: z.string().min(1),
  /** Secret behind per-partner record pseudonyms; rotating it changes every recordRef. */
  DISTRIBUTION_PSEUDONYM_SECRET: z.string().min(16, "must be at least 16 characters"),
  /** Defaults to the namespaced group the ACLs grant ("[<ns>.]hashrelay-distribution"). */
  DISTRIBUTION_CONSUMER_GROUP: z.string().min(1).optional(),
  DISTRIBUTION_POLICY_REFRESH_MS: z.coerce.number().int().positive().default(5_000),
  /** How often S3-delivery partners get a delta and (every Nth time) a snapshot; 0 turns the timer off. */
  DISTRIBUTION_EXPORT_INTERVAL_MS: z.coerce.number().int().min(0).default(60_000),
  DISTRIBUTION_SNAPSHOT_EVERY: z.coerce.number().int().positive().default(60),
  /**
   * Which feed records are signed: each one, or in the chain-signed form only the last of each
   * partition per transaction (and every 256th seq). Partner sinks must all accept the chain form first.
   */
  DISTRIBUTION_FEED_SIGNING: z.enum(["every-record", "chain"]).default("every-record"),
  /** Unset: as many replicas as the canonical topic has (what the operator provisioned for this cluster). */
  DISTRIBUTION_FEED_REPLICATION: z.coerce.number().int().positive().optional(),
  /** Defaults to 2 from 3 replicas up, else 1 (defaultMinInsyncReplicas); at most the replication factor. */
  DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS: z.coerce.number().int().positive().optional(),
  /** Where /metrics, /healthz and /readyz answer (distribution has no other HTTP endpoint). */
  DISTRIBUTION_METRICS_HOST: opsHost,
  DISTRIBUTION_METRICS_PORT: opsPort,
};

export type DistributionConfig = z.infer<z.ZodObject<typeof configShape>>;
/** What callers pass: defaults may be left out; validated on start. */
export type DistributionConfigInput = z.input<z.ZodObject<typeof configShape>>;

export interface RunningDistribution {
  readonly deps: DistributionDeps;
  /** Where /metrics, /healthz and /readyz answer. */
  readonly opsUrl: string;
  /** Re-reads policies, reconciles partners whose policy changed, and starts their feedback consumers. */
  refreshPolicies(): Promise<void>;
  /** Re-plans records whose review an operator decided; returns how many. */
  applyReviewDecisions(): Promise<number>;
  /** Writes deltas (and snapshots when asked) for S3-delivery partners now. */
  exportNow: ExportNow;
  stop(): Promise<void>;
}

export async function startDistribution(input: DistributionConfigInput): Promise<RunningDistribution> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const replication = config.DISTRIBUTION_FEED_REPLICATION;
  // Checked before anything is opened when given; otherwise once the canonical topic's replication is known.
  if (replication !== undefined) feedTopicPlan(replication, config.DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS);
  const logger = createLogger(SERVICE, config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { max: 6, applicationName: "hashrelay-distribution" }, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    { namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS },
  ]);
  const hub = await loadHubSigner(pool, {
    keyId: config.HUB_KEY_ID,
    keyFile: config.HUB_SIGNING_KEY_FILE,
    pseudonymSecret: config.DISTRIBUTION_PSEUDONYM_SECRET,
  });
  const topics = topicNames(config.TOPIC_NAMESPACE);
  const kafka = serviceKafka(config, "hashrelay-distribution", logger);
  const admin = await connectedAdmin(kafka);
  const feedPlan = feedTopicPlan(
    replication ?? (await topicReplication(admin, topics.canonical)),
    config.DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS,
  );
  // A policy change sets off a burst (reconciliation here or in another instance, then the relay
  // and exports reissuing the feed); its freed pages go back to the system once it is over.
  const afterPolicyChanges = releaseAfterBursts(RELEASE_AFTER_POLICY_CHANGE_MS);
  const policies = policyRefresh({
    db: pool,
    admin,
    topics,
    feedTopicPlan: feedPlan,
    logger,
    reconcile: (p) => reconcilePartner(deps, p),
    onReconciled: () => {
      relay.notify();
      afterPolicyChanges.soon();
    },
    onPolicyChanged: () => afterPolicyChanges.soon(),
  });
  const consumerGroup = config.DISTRIBUTION_CONSUMER_GROUP ?? consumerGroups(config.TOPIC_NAMESPACE).distribution;
  const deps: DistributionDeps = {
    pool,
    codec: new AvroCodec(),
    topics,
    hub,
    feedSigning: config.DISTRIBUTION_FEED_SIGNING,
    consumerGroup,
    logger,
    policies: policies.current,
    roundPolicies: policies.forRound,
    reconcileWhile: isActivePolicy,
    afterReconcileSlice: releaseEvery(RECONCILE_SLICES_PER_RELEASE),
  };
  // Before any planning: claims of records distributed before distributed_hashes existed (a no-op afterwards).
  await backfillHashClaims(deps);
  await backfillDisclosedRefs(deps);
  const s3 = createS3Client(config);
  const exportNow = s3Exports({
    deps: feedExportDeps({ pool, s3, bucket: config.S3_BUCKET, hub, topics, admin, namespace: config.TOPIC_NAMESPACE }),
    snapshotEvery: config.DISTRIBUTION_SNAPSHOT_EVERY,
    policies: policies.current,
    logger,
  });
  const metrics = createDistributionMetrics({
    db: pool,
    admin,
    topics,
    namespace: config.TOPIC_NAMESPACE,
    group: consumerGroup,
    policies: policies.current,
    exportIntervalMs: config.DISTRIBUTION_EXPORT_INTERVAL_MS,
    logger,
  });
  const producer = await connectedProducer(kafka);
  const relay = new OutboxRelay({
    pool,
    producer,
    logger,
    lockId: DISTRIBUTION_RELAY_LOCK,
    table: "feed_outbox",
    partitioned: true,
    onRelayed: metrics.relayed,
  });
  const feedback = feedbackConsumers({
    kafka,
    admin,
    deps: { ...deps, keys: (tx) => new PgKeyRegistry(tx, 0) },
    namespace: config.TOPIC_NAMESPACE,
    topicPlan: feedPlan,
    afterCommit: () => relay.notify(),
    tuning: { maxBytesPerPartition: config.CONSUMER_MAX_BATCH_BYTES, sessionTimeoutMs: config.CONSUMER_SESSION_TIMEOUT_MS },
  });
  const refreshPolicies = async (): Promise<void> => {
    await policies.refresh();
    await feedback.ensure(policies.current().map((p) => p.partnerId));
  };
  const applyDecisions = async (): Promise<number> => {
    const applied = await applyReviewDecisions(deps);
    if (applied) {
      logger.info({ applied }, "review decisions applied to partner feeds");
      relay.notify();
    }
    return applied;
  };
  await refreshPolicies();
  relay.start();
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool,
    groupId: consumerGroup,
    topic: topics.canonical,
    logger,
    ...canonicalStep(deps),
    observer: metrics.rounds,
    afterCommit: ({ result: r, partitions }) => {
      metrics.counted(r);
      logger.info(
        { partitions: partitions.map((p) => p.partition), records: r.records, skipped: r.skipped, feedRecords: r.feedRecords },
        "canonical batch distributed",
      );
      relay.handOff(r.queued);
    },
    ...consumerTuning(config),
  });
  const timers = [
    schedulePolicyRefresh(
      async () => {
        await refreshPolicies();
        await applyDecisions();
      },
      config.DISTRIBUTION_POLICY_REFRESH_MS,
      logger,
    ),
    scheduleExports(exportNow, config.DISTRIBUTION_EXPORT_INTERVAL_MS, logger),
  ];
  const ops = await startOpsServer({
    host: config.DISTRIBUTION_METRICS_HOST,
    port: config.DISTRIBUTION_METRICS_PORT,
    registry: metrics.registry,
    logger,
    ready: reachable(pool, admin, [topics.canonical]),
  });
  logger.info(
    { partners: policies.current().map((p) => p.partnerId), feedSigning: config.DISTRIBUTION_FEED_SIGNING, metricsUrl: ops.url },
    "distribution running",
  );
  const stopServices = stopInOrder({
    timers,
    intake: [() => ops.close(), () => consumer.disconnect(), () => feedback.stop()],
    relay,
    kafka: [producer, admin],
    pool,
  });
  const stop = async (): Promise<void> => {
    afterPolicyChanges.stop();
    await stopServices();
  };
  return { deps, opsUrl: ops.url, refreshPolicies, applyReviewDecisions: applyDecisions, exportNow, stop };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain(SERVICE, async () => {
    const config = loadConfig(SERVICE, configShape, effectiveEnv(process.env, servicePrincipal("distribution")));
    const running = await startDistribution(config);
    onShutdown(createLogger(SERVICE, config.LOG_LEVEL), running.stop);
  });
}
