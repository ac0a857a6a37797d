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
    await admin.createTopics({ topics, waitForLeaders: true });
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
