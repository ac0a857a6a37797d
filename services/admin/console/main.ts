/**
 * The operator console: a small read-only web page for the hub (pipeline, partners, dead letters,
 * keys, "where is this hash"), plus the DLQ re-drive the admin CLI has, run as the same admin
 * principal and audited the same way. Wiring only: config, pool, Kafka, the reads and the server.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { kafkaIntakeSink, pgSubmissionLedger } from "../../ingest/adapters.ts";
import { INGEST_MIGRATIONS } from "../../ingest/main.ts";
import { auditMessage } from "../../shared/audit.ts";
import { commonConfigShape, effectiveEnv, loadConfig } from "../../shared/config.ts";
import { ConfigError } from "../../shared/errors.ts";
import { ADMIN_PRINCIPAL } from "../../shared/kafka-access.ts";
import { PgKeyRegistry } from "../../shared/key-registry.ts";
import {
  connectedAdmin,
  connectedProducer,
  onShutdown,
  openDatabase,
  reachable,
  runMain,
  serviceKafka,
  stopInOrder,
} from "../../shared/lifecycle.ts";
import { createLogger } from "../../shared/logging.ts";
import { SHARED_MIGRATIONS } from "../../shared/postgres.ts";
import { topicNames } from "../../shared/topics.ts";
import { AvroCodec } from "../../shared/wire/codec.ts";
import { ADMIN_MIGRATIONS, flushAuditOutbox, queueAuditMessage } from "../audit-outbox.ts";
import { consoleLookup, dlqRedriven } from "../audit.ts";
import { redrive } from "../redrive.ts";
import { ConsoleAuthenticator, FormTokens, parseConsoleUsers } from "./auth.ts";
import { RateTracker } from "./overview.ts";
import { pgKafkaReads } from "./reads.ts";
import { buildConsoleApp } from "./server.ts";

const SERVICE_NAME = "console";

/** Every variable the console reads, validated at start-up. */
export const configShape = {
  ...commonConfigShape,
  CONSOLE_HOST: z.string().min(1).default("127.0.0.1"),
  CONSOLE_PORT: z.coerce.number().int().min(0).max(65535).default(8090),
  /** Users as `name:role:scrypt:<salt>:<hash>`, comma- or newline-separated; or CONSOLE_USERS_FILE. */
  CONSOLE_USERS: z.string().optional(),
  CONSOLE_USERS_FILE: z.string().min(1).optional(),
  CONSOLE_PARTNER_LAG_ALERT: z.coerce.number().int().min(0).default(1000),
  CONSOLE_EXPORT_MAX_AGE_SECONDS: z.coerce.number().int().min(0).default(180),
  CONSOLE_KEY_WARNING_DAYS: z.coerce.number().int().min(1).default(14),
};

export type ConsoleConfigInput = z.input<z.ZodObject<typeof configShape>>;

/** The users from CONSOLE_USERS or the file CONSOLE_USERS_FILE names (exactly one of them). */
export function consoleUsersText(config: { CONSOLE_USERS?: string | undefined; CONSOLE_USERS_FILE?: string | undefined }): string {
  if (config.CONSOLE_USERS && config.CONSOLE_USERS_FILE) throw new ConfigError("set CONSOLE_USERS or CONSOLE_USERS_FILE, not both");
  if (config.CONSOLE_USERS_FILE) {
    try {
      return readFileSync(config.CONSOLE_USERS_FILE, "utf8");
    } catch (err) {
      throw new ConfigError(`CONSOLE_USERS_FILE cannot be read: ${(err as Error).message}`);
    }
  }
  if (!config.CONSOLE_USERS)
    throw new ConfigError("no console users: set CONSOLE_USERS or CONSOLE_USERS_FILE (bin/hashrelay console-user)");
  return config.CONSOLE_USERS;
}

export interface RunningConsole {
  readonly url: string;
  stop(): Promise<void>;
}

export async function startConsole(input: ConsoleConfigInput): Promise<RunningConsole> {
  const config = loadConfig(SERVICE_NAME, configShape, input as Record<string, unknown>);
  const users = parseConsoleUsers(consoleUsersText(config));
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  // The ingest tables: a re-drive admits ingest-stage rejections through ingest's intake core, as the CLI does.
  const pool = await openDatabase(config.DATABASE_URL, { max: 4, applicationName: "hashrelay-console" }, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    ADMIN_MIGRATIONS,
    { namespace: "ingest", dir: INGEST_MIGRATIONS },
  ]);
  const kafka = serviceKafka(config, "hashrelay-console", logger);
  const admin = await connectedAdmin(kafka);
  const producer = await connectedProducer(kafka);
  const codec = new AvroCodec();
  const topics = topicNames(config.TOPIC_NAMESPACE);
  const rates = new RateTracker();
  const reads = pgKafkaReads({ db: pool, kafka, admin, codec, topics, namespace: config.TOPIC_NAMESPACE, rates });
  const app = buildConsoleApp({
    reads,
    auth: new ConsoleAuthenticator(users),
    forms: new FormTokens(),
    thresholds: {
      partnerLag: config.CONSOLE_PARTNER_LAG_ALERT,
      exportMaxAgeSeconds: config.CONSOLE_EXPORT_MAX_AGE_SECONDS,
      keyWarningDays: config.CONSOLE_KEY_WARNING_DAYS,
    },
    namespace: config.TOPIC_NAMESPACE,
    logger,
    ready: reachable(pool, admin, [topics.rejected, topics.audit]),
    async recordLookup(user, algs, recordIds) {
      // Queued in the hub database first (durable), then sent with whatever else waits.
      for (const event of consoleLookup(user.name, user.role, algs, recordIds)) {
        await queueAuditMessage(pool, { ...auditMessage(codec, topics, event), action: event.action });
      }
      await flushAuditOutbox(pool, kafka).catch((err: unknown) => logger.warn({ err }, "console.lookup audit queued, not yet written"));
    },
    async redrive(filter, actor) {
      const keys = new PgKeyRegistry(pool, 0);
      const intake = { codec, keys, ledger: pgSubmissionLedger(pool), sink: kafkaIntakeSink(producer, codec, topics) };
      const report = await redrive({ kafka, codec, topics, intake }, filter);
      const event = dlqRedriven(actor, topics.rejected, filter, report);
      await queueAuditMessage(pool, { ...auditMessage(codec, topics, event), action: event.action });
      try {
        await flushAuditOutbox(pool, kafka);
        return { report, audit: `Recorded on ${topics.audit} as ${event.action} by ${actor}.` };
      } catch (err) {
        logger.error({ err, action: event.action }, "re-drive audit event queued, not yet written");
        return {
          report,
          audit: `The audit event is queued in the hub database, not yet on ${topics.audit}: run bin/hashrelay audit flush.`,
        };
      }
    },
  });
  // Readings a minute apart give the throughput figures even when nobody has the page open.
  const sampler = setInterval(() => {
    reads.pipeline().catch(() => undefined);
  }, 10_000);
  sampler.unref();
  const url = await app.listen({ host: config.CONSOLE_HOST, port: config.CONSOLE_PORT });
  logger.info({ url, users: users.length, namespace: config.TOPIC_NAMESPACE }, "console listening");
  return { url, stop: stopInOrder({ timers: [sampler], intake: [() => app.close()], kafka: [producer, admin], pool }) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runMain(SERVICE_NAME, async () => {
    const config = loadConfig(SERVICE_NAME, configShape, effectiveEnv(process.env, ADMIN_PRINCIPAL));
    const running = await startConsole(config);
    onShutdown(createLogger(SERVICE_NAME, config.LOG_LEVEL), running.stop);
  });
}
