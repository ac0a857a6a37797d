/** kafkajs wiring shared by the services: client, durable producers, and topic provisioning. */
// First, before kafkajs loads: its produce path can drop a partition's records when a leader moves (see that file).
import "./kafkajs-send-messages.ts";
import { readFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";
import type { Admin, Producer, KafkaConfig, ITopicConfig } from "kafkajs";
import { ConfigError } from "./errors.ts";
import { kafkaDefaultPartitioner } from "./kafka-partitioner.ts";
import "./kafkajs-request-queue.ts"; // corrects kafkajs's idle request-queue timer loop (see that file)
import type { Logger } from "./logging.ts";
import { topicPlanForBrokers } from "./topics.ts";
import type { TopicPlanOptions, TopicSpec } from "./topics.ts";

export interface KafkaCredentials {
  readonly mechanism: "scram-sha-512" | "scram-sha-256" | "plain";
  readonly username: string;
  readonly password: string;
}

/** TLS to the brokers: `true` trusts the system's CAs; `ca` trusts only the given PEM certificates. */
export type KafkaTls = boolean | { readonly ca: readonly string[] };

/** Where the brokers are and who this client is to them. */
export interface KafkaConnection {
  readonly brokers: string[];
  readonly sasl?: KafkaCredentials;
  readonly ssl?: KafkaTls;
}

/** The connection settings of a service's config: brokers, TLS and the principal's credentials. */
export interface KafkaConnectionSettings {
  KAFKA_BROKERS: string[];
  KAFKA_SASL_MECHANISM?: KafkaCredentials["mechanism"] | undefined;
  KAFKA_SASL_USERNAME?: string | undefined;
  KAFKA_SASL_PASSWORD?: string | undefined;
  KAFKA_SSL?: "true" | "false" | undefined;
  KAFKA_SSL_CA_FILE?: string | undefined;
}

/** A connection's TLS and SASL settings as kafkajs takes them. */
export function kafkaSecurity(connection: KafkaConnection): Pick<KafkaConfig, "ssl" | "sasl"> {
  return {
    ...(connection.ssl ? { ssl: connection.ssl === true ? true : { ca: [...connection.ssl.ca] } } : {}),
    // kafkajs's SASLOptions is a union keyed on the mechanism; each of ours is one of its members.
    ...(connection.sasl ? { sasl: { ...connection.sasl } as KafkaConfig["sasl"] } : {}),
  };
}

/** The connection a service's validated config names; half-given credentials or TLS settings stop it at start-up. */
export function kafkaConnection(config: KafkaConnectionSettings): KafkaConnection {
  const { KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = config;
  if (Boolean(username) !== Boolean(password)) {
    throw new ConfigError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set together (the principal and its password)");
  }
  const ssl = brokerTls(config);
  if (!username || !password) return { brokers: config.KAFKA_BROKERS, ssl };
  return { brokers: config.KAFKA_BROKERS, ssl, sasl: { mechanism: config.KAFKA_SASL_MECHANISM ?? "scram-sha-512", username, password } };
}

function brokerTls(config: KafkaConnectionSettings): KafkaTls {
  const tls = config.KAFKA_SSL === "true";
  const file = config.KAFKA_SSL_CA_FILE;
  if (!file) return tls;
  // A CA file with TLS off would send the SASL exchange in the clear while the operator believes otherwise.
  if (!tls) throw new ConfigError("KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true: set KAFKA_SSL=true, or drop the CA file");
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`KAFKA_SSL_CA_FILE ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new ConfigError(`KAFKA_SSL_CA_FILE ${file} holds no PEM certificate`);
  return { ca: [pem] };
}

/**
 * How kafkajs spaces the retries of a send, a metadata refresh or a connection: every field given,
 * because kafkajs takes a missing one from defaults that change with NODE_ENV (under vitest's
 * NODE_ENV=test, waits stop growing at 1 s and the same retries give up within seconds, shorter
 * than a restarted broker may take to lead its partitions again).
 */
export const KAFKA_RETRY_POLICY = { initialRetryTime: 200, maxRetryTime: 30_000, multiplier: 2, factor: 0.2 } as const;

const IDEMPOTENT_RETRIES_WARNING = "Limiting retries for the idempotent producer may invalidate EoS guarantees";

export interface KafkaClientOptions extends KafkaConnection {
  readonly clientId: string;
  readonly logger?: Logger;
  readonly retries?: number;
}

export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka(kafkaClientConfig(options));
}

/** The kafkajs configuration createKafka builds (its retry policy is what every producer, consumer and admin of the client uses). */
export function kafkaClientConfig(options: KafkaClientOptions): KafkaConfig {
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: options.brokers,
    // Services ride out a broker restart; a one-shot CLI call may prefer to give up sooner.
    retry: { ...KAFKA_RETRY_POLICY, retries: options.retries ?? 8 },
    // kafkajs's 1 s default is too short for a TLS handshake plus SASL on a busy machine or right
    // after a broker restart; each timed-out attempt also spends one of the retries above.
    connectionTimeout: 10_000,
    logLevel: logLevel.WARN,
    ...kafkaSecurity(options),
  };
  if (options.logger) {
    const log = options.logger.child({ component: "kafkajs" });
    config.logCreator =
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        // Deliberate: a send that runs out of retries fails back to the outbox relay, which sends the
        // rows again, and every consumer is idempotent on key + revision/seq; unbounded retries would
        // instead block shutdown while a broker is down.
        if (message === IDEMPOTENT_RETRIES_WARNING) return;
        if (level <= logLevel.ERROR) log.error(rest, message);
        else if (level === logLevel.WARN) log.warn(rest, message);
        else log.debug(rest, message);
      };
  }
  return config;
}

/** What the services do with a producer. */
export type RecordProducer = Pick<Producer, "connect" | "disconnect" | "send" | "sendBatch">;

/**
 * Errors after which an idempotent producer cannot go on: the broker no longer accepts its producer
 * id and sequence numbers (seen after a broker restart when a send had run out of retries halfway).
 * Retrying with the same producer fails forever; a new producer gets a new id.
 */
const PRODUCER_STATE_LOST = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_EPOCH",
  "INVALID_PRODUCER_ID_MAPPING",
]);

export function producerStateLost(err: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [err];
  while (pending.length) {
    const e = pending.pop() as { type?: unknown; originalError?: unknown; cause?: unknown; errors?: unknown } | null | undefined;
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.type === "string" && PRODUCER_STATE_LOST.has(e.type)) return true;
    pending.push(e.originalError, e.cause, ...(Array.isArray(e.errors) ? e.errors : []));
  }
  return false;
}

/**
 * A producer that replaces its kafkajs producer when the broker has lost track of it
 * (producerStateLost): the failed send still fails, so the caller's retry (the outbox relay, a
 * force's client) goes out on the new producer. Re-sends are safe: consumers are idempotent on key
 * + revision or seq, and ingest on the submission's content.
 */
export class RenewingProducer implements RecordProducer {
  private inner: Producer;
  private connected = false;
  private mustConnect = false;
  private renewing: Promise<void> | null = null;

  private readonly make: () => Producer;

  constructor(make: () => Producer) {
    this.make = make;
    this.inner = make();
  }

  async connect(): Promise<void> {
    await this.inner.connect();
    this.connected = true;
  }

  async disconnect(): Promise<void> {
    this.connected = false;
    await this.renewing?.catch(() => undefined);
    await this.inner.disconnect();
  }

  send(record: Parameters<Producer["send"]>[0]): ReturnType<Producer["send"]> {
    return this.guard(() => this.inner.send(record));
  }

  sendBatch(batch: Parameters<Producer["sendBatch"]>[0]): ReturnType<Producer["sendBatch"]> {
    return this.guard(() => this.inner.sendBatch(batch));
  }

  private async guard<T>(op: () => Promise<T>): Promise<T> {
    if (this.mustConnect) {
      await this.inner.connect();
      this.mustConnect = false;
    }
    try {
      return await op();
    } catch (err) {
      if (this.connected && producerStateLost(err)) {
        this.renewing ??= this.renew().finally(() => {
          this.renewing = null;
        });
        await this.renewing;
      }
      throw err;
    }
  }

  private async renew(): Promise<void> {
    const old = this.inner;
    this.inner = this.make();
    this.mustConnect = true;
    await old.disconnect().catch(() => undefined);
  }
}

/**
 * An idempotent producer that waits for all in-sync replicas: once send() resolves the record is
 * durably in Kafka, and a retried send cannot duplicate it. Renewed when the broker loses its state.
 */
export function createDurableProducer(kafka: Kafka, transactionalId?: string): RecordProducer {
  return new RenewingProducer(() =>
    kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // Murmur2, as the Java client: the same key lands on the same partition whichever client wrote it.
      createPartitioner: kafkaDefaultPartitioner,
      allowAutoTopicCreation: false,
      ...(transactionalId ? { transactionalId } : {}),
    }),
  );
}

/** Creates missing topics with their settings and brings existing ones' configs into line. */
export async function provisionTopics(admin: Admin, specs: TopicSpec[]): Promise<{ created: string[]; updated: string[] }> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length) {
    const topics: ITopicConfig[] = missing.map((s) => ({
      topic: s.topic,
      numPartitions: s.numPartitions,
      replicationFactor: s.replicationFactor,
      configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
    }));
    try {
      await admin.createTopics({ topics, waitForLeaders: true });
    } catch (err) {
      // A busy KRaft broker can be slow to show new topics' metadata; the topics exist, so wait below.
      if (!/does not host this topic-partition|already exists|leader/i.test((err as Error).message)) throw err;
    }
    await waitForTopics(
      admin,
      missing.map((s) => s.topic),
    );
  }
  const present = specs.filter((s) => existing.has(s.topic));
  if (present.length) {
    await admin.alterConfigs({
      validateOnly: false,
      resources: present.map((s) => ({
        type: 2, // ResourceTypes.TOPIC
        name: s.topic,
        configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  return { created: missing.map((s) => s.topic), updated: present.map((s) => s.topic) };
}

/**
 * The topic plan for the cluster `admin` is connected to (topicPlanForBrokers): provisioning on three
 * brokers replicates three times without anyone passing a replication factor.
 */
export async function clusterTopicPlan(admin: Admin, partitions?: number): Promise<TopicPlanOptions> {
  const { brokers } = await admin.describeCluster();
  return topicPlanForBrokers(brokers.length, partitions);
}

/** How many replicas each partition of an existing topic has (its first partition's). */
export async function topicReplication(admin: Admin, topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  const replicas = topics[0]?.partitions[0]?.replicas.length;
  if (!replicas) throw new Error(`topic ${topic} has no partitions in the metadata`);
  return replicas;
}

/** Resolves once every topic answers metadata with a leader for each partition (up to `timeoutMs`). */
export async function waitForTopics(admin: Admin, topics: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      // Waiting does not grant an ACL: say so at once instead of after the timeout.
      if ((err as { type?: string }).type === "TOPIC_AUTHORIZATION_FAILED") throw err;
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics not ready after ${timeoutMs} ms: ${topics.join(", ")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Every message value on `topic` from its start up to its end when called, through a throwaway
 * consumer group that is deleted afterwards (operator tools reading the DLQ or the audit topic).
 */
export async function readTopicToEnd(kafka: Kafka, topic: string, purpose: string, timeoutMs = 60_000): Promise<Buffer[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const remaining = new Map(ends.filter((e) => Number(e.high) > Number(e.low)).map((e) => [e.partition, Number(e.high)]));
    const out: Buffer[] = [];
    if (remaining.size === 0) return out;
    const groupId = `hashrelay-${purpose}-${Date.now()}-${process.pid}`;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`could not read ${topic} to its end within ${timeoutMs / 1000} s`)), timeoutMs);
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            if (message.value) out.push(message.value);
            if (Number(message.offset) + 1 >= (remaining.get(partition) ?? 0)) remaining.delete(partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    await admin.deleteGroups([groupId]).catch(() => undefined); // leftovers only clutter group listings
    return out;
  } finally {
    await admin.disconnect();
  }
}
