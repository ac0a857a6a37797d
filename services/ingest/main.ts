/**
 * ingest: the producer. Forces and the NCA submit signed hash records over HTTP (or S3 bulk
 * import); accepted ones go to hashes.submitted.v1, rejected ones to hashes.rejected.v1.
 */
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { AvroCodec } from "../shared/wire/codec.ts";
import { commonConfigShape, effectiveEnv, loadConfig, s3ConfigShape } from "../shared/config.ts";
import { servicePrincipal } from "../shared/kafka-access.ts";
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
import { SHARED_MIGRATIONS } from "../shared/postgres.ts";
import { createS3Client } from "../shared/s3.ts";
import { topicNames } from "../shared/topics.ts";
import { kafkaIntakeSink, pgRequestReplayGuard, pgSubmissionLedger } from "./adapters.ts";
import { buildIngestApi } from "./http.ts";
import { ImportService } from "./imports.ts";
import type { IntakeDeps } from "./intake.ts";
import { createIngestMetrics } from "./metrics.ts";

export const INGEST_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

const SERVICE_NAME = "ingest";

/** Every variable the service reads, validated at start-up (infra/deploy manifests are checked against it). */
export const configShape = {
  ...commonConfigShape,
  ...s3ConfigShape,
  INGEST_HOST: z.string().default("127.0.0.1"),
  INGEST_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  INGEST_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
  INGEST_MAX_ITEMS_PER_REQUEST: z.coerce.number().int().positive().default(5000),
  /** Keep equal to dedup's DEDUP_MAX_SUBMISSION_AGE_DAYS, so nothing accepted here is refused there. */
  INGEST_MAX_SUBMISSION_AGE_DAYS: z.coerce.number().positive().default(30),
};

export type IngestConfig = z.infer<z.ZodObject<typeof configShape>>;
/** What callers pass: defaults may be left out; validated on start. */
export type IngestConfigInput = z.input<z.ZodObject<typeof configShape>>;

export interface RunningIngest {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startIngest(input: IngestConfigInput): Promise<RunningIngest> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const logger = createLogger("ingest", config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { max: 8, applicationName: "hashrelay-ingest" }, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    { namespace: "ingest", dir: INGEST_MIGRATIONS },
  ]);
  const kafka = serviceKafka(config, "hashrelay-ingest", logger);
  const producer = await connectedProducer(kafka);
  const codec = new AvroCodec();
  const keys = new PgKeyRegistry(pool);
  const topics = topicNames(config.TOPIC_NAMESPACE);
  const admin = await connectedAdmin(kafka);
  const metrics = createIngestMetrics({ db: pool, admin, deadLetterTopic: topics.rejected, logger });
  const intake: IntakeDeps = {
    codec,
    keys,
    ledger: pgSubmissionLedger(pool),
    sink: kafkaIntakeSink(producer, codec, topics),
    maxSubmissionAgeMs: config.INGEST_MAX_SUBMISSION_AGE_DAYS * 86_400_000,
  };
  const imports = new ImportService({
    db: pool,
    s3: createS3Client(config),
    defaultBucket: config.S3_BUCKET,
    intake,
    logger,
    metrics,
  });
  const app = buildIngestApi({
    intake,
    keys,
    replay: pgRequestReplayGuard(pool),
    imports,
    metrics,
    logger,
    bodyLimitBytes: config.INGEST_BODY_LIMIT_BYTES,
    maxItemsPerRequest: config.INGEST_MAX_ITEMS_PER_REQUEST,
    ready: reachable(pool, admin, [topics.submitted, topics.rejected]),
  });
  const url = await app.listen({ host: config.INGEST_HOST, port: config.INGEST_PORT });
  const resumed = await imports.resumePending();
  logger.info({ url, resumedImports: resumed, topics: topics.submitted }, "ingest listening");

  // Closing the server stops accepting and lets requests in flight finish.
  return { url, stop: stopInOrder({ intake: [() => app.close(), () => imports.stop()], kafka: [admin, producer], pool }) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain("ingest", async () => {
    const config = loadConfig("ingest", configShape, effectiveEnv(process.env, servicePrincipal("ingest")));
    const running = await startIngest(config);
    onShutdown(createLogger("ingest", config.LOG_LEVEL), running.stop);
  });
}
