/**
 * Start/stop plumbing shared by the services' main.ts files: small steps each main.ts calls in its
 * own order (open the database, build the Kafka client, connect producers), and the stop function,
 * which always releases things in the same order: timers, then what takes in work (servers,
 * consumers, each finishing or rolling back what it has in hand), the outbox relay, Kafka clients,
 * and the pool last, so nothing still running finds its connection gone.
 */
import type { Admin, Kafka } from "kafkajs";
import { createDurableProducer, createKafka, kafkaConnection } from "./kafka.ts";
import type { KafkaConnectionSettings, RecordProducer } from "./kafka.ts";
import type { Logger } from "./logging.ts";
import { createPool, migrate } from "./postgres.ts";
import type { Pool, Queryable } from "./postgres.ts";

/** Opens a service's pool and applies its migration folders, in the order given. */
export async function openDatabase(
  url: string,
  pool: { max: number; applicationName: string },
  migrations: { namespace: string; dir: string }[],
): Promise<Pool> {
  const opened = createPool(url, pool);
  await migrate(opened, migrations);
  return opened;
}

/** A service's Kafka client: the configured connection, named KAFKA_CLIENT_ID or else `clientId`. */
export function serviceKafka(
  config: KafkaConnectionSettings & { KAFKA_CLIENT_ID?: string | undefined },
  clientId: string,
  logger: Logger,
): Kafka {
  return createKafka({ ...kafkaConnection(config), clientId: config.KAFKA_CLIENT_ID ?? clientId, logger });
}

/** A connected durable producer (createDurableProducer). */
export async function connectedProducer(kafka: Kafka): Promise<RecordProducer> {
  const producer = createDurableProducer(kafka);
  await producer.connect();
  return producer;
}

export async function connectedAdmin(kafka: Kafka): Promise<Admin> {
  const admin = kafka.admin();
  await admin.connect();
  return admin;
}

/** What a running service holds, for `stopInOrder`. */
export interface ServiceParts {
  /** Schedules and polls, cleared first (null: a timer that was turned off). */
  readonly timers?: readonly (NodeJS.Timeout | null)[];
  /** What takes in work, stopped in the order given: HTTP servers, import workers, consumers. */
  readonly intake?: readonly (() => Promise<void>)[];
  readonly relay?: { stop(): Promise<void> };
  /** Producers and admin clients, disconnected in the order given. */
  readonly kafka?: readonly { disconnect(): Promise<void> }[];
  readonly pool: Pool;
}

/** The service's stop(): each step waits for the one before; the first error ends it. */
export function stopInOrder(parts: ServiceParts): () => Promise<void> {
  return async () => {
    for (const timer of parts.timers ?? []) if (timer) clearInterval(timer);
    for (const stop of parts.intake ?? []) await stop();
    await parts.relay?.stop();
    for (const client of parts.kafka ?? []) await client.disconnect();
    await parts.pool.end();
  };
}

/**
 * Calls `stop` once on SIGTERM or SIGINT, then exits. A second signal exits at once; a stop
 * that hangs is cut off after `graceMs` so an orchestrator's kill is never needed.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>, graceMs = 20_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "stopping: finishing the batch in hand");
    const timer = setTimeout(() => {
      logger.error("stop took too long; exiting");
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop()
      .then(() => {
        logger.info("stopped cleanly");
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, "error while stopping");
        process.exit(1);
      });
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

/** Runs a service's main, printing a clear one-line reason (and code) when start-up fails. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const e = err as Error & { reason?: string; type?: string; name?: string };
    process.stderr.write(`${service}: failed to start${e.reason ? ` [${e.reason}]` : ""}: ${e.message}${kafkaAccessHint(e)}\n`);
    process.exit(1);
  });
}

/** What to do about the two start-up failures a secured broker causes. */
function kafkaAccessHint(e: { type?: string; name?: string }): string {
  if (e.name === "KafkaJSSASLAuthenticationError") {
    return " (the broker refused KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD; locally: infra/stack.sh principal <name>)";
  }
  if (e.type === "TOPIC_AUTHORIZATION_FAILED" || e.type === "GROUP_AUTHORIZATION_FAILED" || e.name === "KafkaJSGroupCoordinatorNotFound") {
    return " (this principal lacks ACLs for these topics or its consumer group: bin/hashrelay access apply [--namespace <ns>])";
  }
  return "";
}

/** The readiness check of /readyz: the database answers and the broker knows the service's topics. */
export function reachable(db: Queryable, admin: Admin, topics: readonly string[]): () => Promise<void> {
  return async () => {
    await db.query("SELECT 1");
    await admin.fetchTopicMetadata({ topics: [...topics] });
  };
}
