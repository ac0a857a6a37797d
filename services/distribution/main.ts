/**
 * distribution: consumes hashes.canonical.v1 and issues each partner's filtered, minimised,
 * hub-signed feed: Kafka topic feed.<partner>.v1 and/or S3 snapshots and deltas.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { AvroCodec } from "../shared/wire/codec.ts";
import { commonConfigShape, effectiveEnv, loadConfig, s3ConfigShape } from "../shared/config.ts";
import { consumerGroups, servicePrincipal } from "../shared/kafka-access.ts";
import { ConfigError } from "../shared/errors.ts";
import { startExactlyOnceConsumer } from "../shared/exactly-once-consumer.ts";
import { createDurableProducer, createKafka, kafkaConnection, provisionTopics } from "../shared/kafka.ts";
import { PgKeyRegistry, assertKeyUsable } from "../shared/key-registry.ts";
import { onShutdown, runMain } from "../shared/lifecycle.ts";
import { createLogger } from "../shared/logging.ts";
import { OutboxRelay } from "../shared/outbox-relay.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../shared/postgres.ts";
import { createS3Client } from "../shared/s3.ts";
import { privateKeyFromPem } from "../shared/wire/signing.ts";
import { LOCAL_TOPIC_PLAN, defaultMinInsyncReplicas, feedTopicSpec, topicNames } from "../shared/topics.ts";
import { exportDelta, exportSnapshot } from "./exports.ts";
import type { HubSigner } from "./feed-writer.ts";
import type { PartnerPolicy } from "./policy.ts";
import { loadPolicies } from "./policy-store.ts";
import { SERVICE, backfillHashClaims, processCanonicalBatch, reconcilePartner } from "./processor.ts";
import type { DistributionDeps } from "./processor.ts";

export const DISTRIBUTION_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));
const RELAY_LOCK = 7431005;

const SERVICE_NAME = "distribution";

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
  DISTRIBUTION_FEED_REPLICATION: z.coerce.number().int().positive().default(LOCAL_TOPIC_PLAN.replicationFactor),
  /** Defaults to 2 from 3 replicas up, else 1 (defaultMinInsyncReplicas); at most the replication factor. */
  DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS: z.coerce.number().int().positive().optional(),
};

export type DistributionConfig = z.infer<z.ZodObject<typeof configShape>>;
/** What callers pass: defaults may be left out; validated on start. */
export type DistributionConfigInput = z.input<z.ZodObject<typeof configShape>>;

export interface RunningDistribution {
  readonly deps: DistributionDeps;
  /** Re-reads policies and reconciles partners whose policy changed. */
  refreshPolicies(): Promise<void>;
  /** Writes deltas (and snapshots when asked) for S3-delivery partners now. */
  exportNow(options?: { snapshots?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export async function startDistribution(input: DistributionConfigInput): Promise<RunningDistribution> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const feedMinInsync = config.DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS ?? defaultMinInsyncReplicas(config.DISTRIBUTION_FEED_REPLICATION);
  if (feedMinInsync > config.DISTRIBUTION_FEED_REPLICATION) {
    // the broker would refuse every write to such a topic
    throw new ConfigError(`DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS ${feedMinInsync} exceeds DISTRIBUTION_FEED_REPLICATION ${config.DISTRIBUTION_FEED_REPLICATION}`);
  }
  const logger = createLogger(SERVICE, config.LOG_LEVEL);
  const pool = createPool(config.DATABASE_URL, { max: 6, applicationName: "hashrelay-distribution" });
  await migrate(pool, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    { namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS },
  ]);
  let privateKeyPem: string;
  try {
    privateKeyPem = readFileSync(config.HUB_SIGNING_KEY_FILE, "utf8");
  } catch (err) {
    throw new ConfigError(`HUB_SIGNING_KEY_FILE ${config.HUB_SIGNING_KEY_FILE} cannot be read: ${(err as Error).message}`);
  }
  // Refuse to sign with a key partners would reject.
  assertKeyUsable(config.HUB_KEY_ID, await new PgKeyRegistry(pool, 0).findKey(config.HUB_KEY_ID), { ownerKind: "hub", ownerId: "hub", at: new Date() });
  const hub: HubSigner = { keyId: config.HUB_KEY_ID, privateKey: privateKeyFromPem(privateKeyPem), pseudonymSecret: config.DISTRIBUTION_PSEUDONYM_SECRET };
  const topics = topicNames(config.TOPIC_NAMESPACE);
  const kafka = createKafka({ ...kafkaConnection(config), clientId: config.KAFKA_CLIENT_ID ?? "hashrelay-distribution", logger });
  const admin = kafka.admin();
  await admin.connect();
  let policies: PartnerPolicy[] = [];
  const consumerGroup = config.DISTRIBUTION_CONSUMER_GROUP ?? consumerGroups(config.TOPIC_NAMESPACE).distribution;
  const deps: DistributionDeps = { pool, codec: new AvroCodec(), topics, hub, consumerGroup, logger, policies: () => policies };
  // Before any planning: claims of records distributed before migration 002 (a no-op afterwards).
  await backfillHashClaims(deps);
  const s3 = createS3Client(config);
  const exportDeps = {
    pool,
    s3,
    bucket: config.S3_BUCKET,
    hub,
    prefix: config.TOPIC_NAMESPACE ? `${config.TOPIC_NAMESPACE}/feeds` : "feeds",
    feedOffsets: {
      topic: (partnerId: string) => topics.feed(partnerId),
      highWatermarks: async (topic: string) =>
        Object.fromEntries((await admin.fetchTopicOffsets(topic)).map((o) => [String(o.partition), o.high])),
    },
  };

  const refreshPolicies = async () => {
    const loaded = await loadPolicies(pool);
    const { rows } = await pool.query<{ partner_id: string; version: number }>("SELECT partner_id, version FROM policy_applied");
    const applied = new Map(rows.map((r) => [r.partner_id, r.version]));
    const plan = { ...LOCAL_TOPIC_PLAN, replicationFactor: config.DISTRIBUTION_FEED_REPLICATION, minInsyncReplicas: feedMinInsync };
    const kafkaPartners = loaded.filter((p) => p.delivery !== "s3");
    if (kafkaPartners.length) {
      await provisionTopics(admin, kafkaPartners.map((p) => feedTopicSpec(p.partnerId, { ...plan, partitions: p.feedPartitions }, topics)));
    }
    // A suspended partner drops out here: nothing more is planned or exported for it.
    for (const gone of policies.filter((p) => !loaded.some((l) => l.partnerId === p.partnerId))) {
      logger.warn({ partnerId: gone.partnerId }, "partner feed stopped: policy suspended");
    }
    policies = loaded;
    for (const p of loaded) {
      if (applied.get(p.partnerId) === p.version) continue;
      const issued = await reconcilePartner(deps, p);
      logger.info({ partnerId: p.partnerId, version: p.version, issued }, "partner feed reconciled with its policy");
      relay.notify();
    }
  };

  let exportRound = 0;
  const exportNow = async (options: { snapshots?: boolean } = {}) => {
    exportRound++;
    for (const p of policies.filter((x) => x.delivery !== "kafka")) {
      const delta = await exportDelta(exportDeps, p.partnerId);
      const snapshotDeps = p.delivery === "s3" ? { ...exportDeps, feedOffsets: undefined } : exportDeps;
      const snapshot = options.snapshots || (exportRound - 1) % config.DISTRIBUTION_SNAPSHOT_EVERY === 0 ? await exportSnapshot(snapshotDeps, p.partnerId) : null;
      logger.info({ partnerId: p.partnerId, delta: delta?.object ?? null, snapshot: snapshot?.object ?? null }, "S3 feed exported");
    }
  };

  const producer = createDurableProducer(kafka);
  await producer.connect();
  const relay = new OutboxRelay({ pool, producer, logger, lockId: RELAY_LOCK, table: "feed_outbox", partitioned: true });
  await refreshPolicies();
  relay.start();
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool,
    groupId: consumerGroup,
    topic: topics.canonical,
    logger,
    handle: async (batch) => {
      const r = await processCanonicalBatch(deps, batch.topic, batch.partition, batch.messages);
      logger.info({ partition: batch.partition, records: r.records, skipped: r.skipped, feedRecords: r.feedRecords }, "canonical batch distributed");
      return r;
    },
    afterCommit: () => relay.notify(),
    maxBytesPerPartition: config.CONSUMER_MAX_BATCH_BYTES,
    sessionTimeoutMs: config.CONSUMER_SESSION_TIMEOUT_MS,
  });
  const policyTimer = setInterval(() => {
    refreshPolicies().catch((err: unknown) => logger.error({ err }, "policy refresh failed"));
  }, config.DISTRIBUTION_POLICY_REFRESH_MS);
  const exportTimer =
    config.DISTRIBUTION_EXPORT_INTERVAL_MS > 0
      ? setInterval(() => {
          exportNow().catch((err: unknown) => logger.error({ err }, "S3 export failed"));
        }, config.DISTRIBUTION_EXPORT_INTERVAL_MS)
      : null;
  logger.info({ partners: policies.map((p) => p.partnerId) }, "distribution running");

  return {
    deps,
    refreshPolicies,
    exportNow,
    async stop() {
      clearInterval(policyTimer);
      if (exportTimer) clearInterval(exportTimer);
      await consumer.disconnect();
      await relay.stop();
      await producer.disconnect();
      await admin.disconnect();
      await pool.end();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain(SERVICE, async () => {
    const config = loadConfig(SERVICE, configShape, effectiveEnv(process.env, servicePrincipal("distribution")));
    const running = await startDistribution(config);
    onShutdown(createLogger(SERVICE, config.LOG_LEVEL), running.stop);
  });
}
