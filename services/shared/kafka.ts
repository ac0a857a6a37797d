/** kafkajs wiring shared by the services: client, durable producers, and topic provisioning. */
import { Kafka, Partitioners, logLevel } from "kafkajs";
import type { Admin, Producer, KafkaConfig, ITopicConfig } from "kafkajs";
import type { Logger } from "./logging.ts";
import type { TopicSpec } from "./topics.ts";

export function createKafka(options: { brokers: string[]; clientId: string; logger?: Logger }): Kafka {
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: options.brokers,
    retry: { initialRetryTime: 200, retries: 8 },
    logLevel: logLevel.WARN,
  };
  if (options.logger) {
    const log = options.logger.child({ component: "kafkajs" });
    config.logCreator = () => ({ level, log: entry }) => {
      const { message, ...rest } = entry;
      if (level <= logLevel.ERROR) log.error(rest, message);
      else if (level === logLevel.WARN) log.warn(rest, message);
      else log.debug(rest, message);
    };
  }
  return new Kafka(config);
}

/**
 * An idempotent producer that waits for all in-sync replicas: once send() resolves the record is
 * durably in Kafka, and a retried send cannot duplicate it.
 */
export function createDurableProducer(kafka: Kafka, transactionalId?: string): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // Murmur2, as the Java client: the same key lands on the same partition whichever client wrote it.
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    ...(transactionalId ? { transactionalId } : {}),
  });
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
    await waitForTopics(admin, missing.map((s) => s.topic));
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

/** Resolves once every topic answers metadata with a leader for each partition (up to `timeoutMs`). */
export async function waitForTopics(admin: Admin, topics: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics not ready after ${timeoutMs} ms: ${topics.join(", ")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
