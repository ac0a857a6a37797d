/**
 * partner-sink: what a partner runs against its own PostgreSQL. Bootstraps from the hub's
 * latest signed S3 snapshot, then tails feed.<partner>.v1, verifying the hub signature, seq and
 * chain of every record before applying it, and serves lookups by algorithm and value.
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { AvroCodec } from "../shared/wire/codec.ts";
import { effectiveEnv, loadConfig, commonConfigShape, consumerConfigShape, kafkaConfigShape, opsHost, opsPort } from "../shared/config.ts";
import { consumerGroups, partnerPrincipal } from "../shared/kafka-access.ts";
import type { Kafka } from "kafkajs";
import { consumerTuning, startExactlyOnceConsumer } from "../shared/exactly-once-consumer.ts";
import { waitForTopics } from "../shared/kafka.ts";
import { connectedAdmin, onShutdown, openDatabase, reachable, runMain, serviceKafka, stopInOrder } from "../shared/lifecycle.ts";
import { createLogger } from "../shared/logging.ts";
import type { Logger } from "../shared/logging.ts";
import { createS3Client } from "../shared/s3.ts";
import { topicNames } from "../shared/topics.ts";
import { feedRoundStep } from "./applier.ts";
import type { SinkDeps } from "./applier.ts";
import { bootstrapFromSnapshot } from "./bootstrap.ts";
import { feedbackConfigShape, openFeedbackSender } from "./feedback.ts";
import { buildLookupApi } from "./lookup-api.ts";
import { createSinkMetrics } from "./metrics.ts";
import { releaseAfterBursts } from "../shared/release-memory.ts";
import { watchForResumes } from "./resume-watch.ts";
import { parseTrustedHubKeys } from "./verifier.ts";
import { feedsPrefix } from "../shared/wire/snapshot-manifest.ts";

export const SINK_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

const SERVICE_NAME = "partner-sink";
/**
 * A round applying this many records is part of a burst (a policy change's reissue, a catch-up):
 * its freed pages go back to the system once the burst has been over this long (release-memory.ts).
 */
const BURST_ROUND_RECORDS = 200;
const RELEASE_AFTER_BURST_MS = 10_000;

/** Every variable the service reads, validated at start-up (infra/deploy manifests are checked against it). */
export const configShape = {
  // As the partner's own principal ("partner-<id>"): the broker lets it read its feed and nothing else.
  ...kafkaConfigShape,
  TOPIC_NAMESPACE: commonConfigShape.TOPIC_NAMESPACE,
  LOG_LEVEL: commonConfigShape.LOG_LEVEL,
  ...consumerConfigShape,
  PARTNER_ID: z.string().regex(/^[a-z0-9][a-z0-9-]{1,62}$/),
  /** The partner's own database (not the hub's). */
  PARTNER_DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
  /** Trusted hub keys: "keyId=base64[@ISO-until],..." — list two during a hub key rotation. */
  HUB_PUBLIC_KEYS: z.string().min(1),
  /** The lookup API, with /metrics, /healthz and /readyz beside it. */
  PARTNER_HTTP_HOST: opsHost,
  PARTNER_HTTP_PORT: opsPort,
  PARTNER_BOOTSTRAP: z.enum(["s3", "none"]).default("s3"),
  /** How often a halted (held) partition checks whether an operator resumed it (hashrelay-sink resume). */
  PARTNER_RESUME_POLL_MS: z.coerce.number().int().min(100).max(300_000).default(2_000),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default("us-east-1"),
  S3_ACCESS_KEY_ID: z.string().default(""),
  S3_SECRET_ACCESS_KEY: z.string().default(""),
  S3_BUCKET: z.string().default("hashrelay"),
  ...feedbackConfigShape,
};

/**
 * The sink's consumer group: per partner and per topic namespace, so two pipelines on one broker
 * (or one partner's staging and production feeds) never share a group.
 */
export function sinkConsumerGroup(partnerId: string, namespace = ""): string {
  return consumerGroups(namespace).sink(partnerId);
}

export type SinkConfig = z.infer<z.ZodObject<typeof configShape>>;
/** What callers pass: defaults may be left out; validated on start. */
export type SinkConfigInput = z.input<z.ZodObject<typeof configShape>>;

export interface RunningSink {
  readonly url: string;
  readonly deps: SinkDeps;
  stop(): Promise<void>;
}

export async function startPartnerSink(input: SinkConfigInput): Promise<RunningSink> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const logger = createLogger("partner-sink", config.LOG_LEVEL).child({ partnerId: config.PARTNER_ID });
  const pool = await openDatabase(config.PARTNER_DATABASE_URL, { max: 4, applicationName: `hashrelay-sink-${config.PARTNER_ID}` }, [
    { namespace: "partner-sink", dir: SINK_MIGRATIONS },
  ]);
  const keys = parseTrustedHubKeys(config.HUB_PUBLIC_KEYS);
  const topic = topicNames(config.TOPIC_NAMESPACE).feed(config.PARTNER_ID);
  const consumerGroup = sinkConsumerGroup(config.PARTNER_ID, config.TOPIC_NAMESPACE);
  if (config.PARTNER_BOOTSTRAP === "s3" && config.S3_ACCESS_KEY_ID) {
    const boot = await bootstrapFromSnapshot({
      pool,
      s3: createS3Client(config),
      bucket: config.S3_BUCKET,
      prefix: feedsPrefix(config.TOPIC_NAMESPACE),
      partnerId: config.PARTNER_ID,
      keys,
      consumerGroup,
      topic,
    });
    if (boot) logger.info(boot, "bootstrapped from snapshot");
  }
  const deps: SinkDeps = { pool, codec: new AvroCodec(), partnerId: config.PARTNER_ID, consumerGroup, keys: () => keys, logger };
  const kafka = serviceKafka(config, `partner-sink-${config.PARTNER_ID}`, logger);
  await waitForFeedTopic(kafka, topic, logger);
  const admin = await connectedAdmin(kafka);
  let held = (): number => 0;
  const afterBursts = releaseAfterBursts(RELEASE_AFTER_BURST_MS);
  const metrics = createSinkMetrics({ db: pool, admin, group: consumerGroup, topic, keys: deps.keys, held: () => held(), logger });
  const consumer = await startExactlyOnceConsumer({
    kafka,
    pool,
    groupId: consumerGroup,
    topic,
    logger,
    // A halted partition is held at its stored offset (the halting record) and not fetched again
    // until `hashrelay-sink resume` clears the halt; watchForResumes notices that.
    ...feedRoundStep(deps),
    // A feed tail waiting for its signed chain head pauses its partition to read it again shortly;
    // with every partition paused kafkajs sleeps a whole fetch wait before it looks again.
    fetchWaitMs: 500,
    observer: metrics.rounds,
    afterCommit: ({ result, partitions }) => {
      metrics.counted(result);
      const totals = { applied: 0, duplicates: 0, refused: 0 };
      for (const r of result.values()) {
        totals.applied += r.applied;
        totals.duplicates += r.duplicates;
        totals.refused += r.refused;
      }
      if (totals.applied >= BURST_ROUND_RECORDS) afterBursts.soon();
      if (totals.applied || totals.refused) {
        const nextOffsets = Object.fromEntries(partitions.map((p) => [p.partition, p.nextOffset]));
        logger.info({ partitions: partitions.map((p) => p.partition), ...totals, nextOffsets }, "feed batch applied");
      }
      for (const [partition, r] of result) {
        if (r.halted && r.refused > 0) {
          logger.warn({ partition }, "partition halted: held until an operator resumes it (hashrelay-sink status)");
        }
      }
    },
    ...consumerTuning(config),
  });
  held = () => consumer.pausedPartitions().length;
  const resumePoll = watchForResumes(pool, consumer, config.PARTNER_RESUME_POLL_MS, logger);
  const feedback = await openFeedbackSender(config, deps.codec, logger);
  const api = buildLookupApi(
    pool,
    logger,
    {
      registry: metrics.registry,
      ready: reachable(pool, admin, [topic]),
    },
    feedback,
  );
  const url = await api.listen({ host: config.PARTNER_HTTP_HOST, port: config.PARTNER_HTTP_PORT });
  logger.info({ url, topic }, "partner sink running");
  const stopParts = stopInOrder({
    timers: [resumePoll],
    intake: [() => api.close(), () => consumer.disconnect()],
    kafka: feedback ? [admin, feedback.producer] : [admin],
    pool,
  });
  const stop = async (): Promise<void> => {
    afterBursts.stop();
    await stopParts();
  };
  return { url, deps, stop };
}

/** The hub creates the feed topic when the partner's policy is first applied; waits for it. */
async function waitForFeedTopic(kafka: Kafka, topic: string, logger: Logger): Promise<void> {
  const admin = await connectedAdmin(kafka);
  try {
    const exists = (await admin.listTopics()).includes(topic);
    if (!exists) logger.info({ topic }, "waiting for the hub to create this partner's feed topic");
    await waitForTopics(admin, [topic], 300_000);
  } finally {
    await admin.disconnect();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain("partner-sink", async () => {
    const partnerId = effectiveEnv()["PARTNER_ID"] ?? "";
    const config = loadConfig(
      "partner-sink",
      configShape,
      effectiveEnv(process.env, /^[a-z0-9][a-z0-9-]{1,62}$/.test(partnerId) ? partnerPrincipal(partnerId) : undefined),
    );
    const running = await startPartnerSink(config);
    onShutdown(createLogger("partner-sink", config.LOG_LEVEL), running.stop);
  });
}
