/** Reading topics back in tests. */
import type { Kafka } from "kafkajs";
import { uniqueName } from "./stack.ts";

export interface ReadMessage {
  readonly key: string | null;
  readonly value: Buffer;
  readonly partition: number;
  readonly offset: string;
}

/** Reads a topic from the beginning until `until` says enough (or the timeout passes). */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  until: (messages: ReadMessage[]) => boolean,
  timeoutMs = 30_000,
): Promise<ReadMessage[]> {
  const consumer = kafka.consumer({ groupId: uniqueName("reader"), maxWaitTimeInMs: 200 });
  const messages: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out on ${topic} with ${messages.length} messages`)), timeoutMs);
      if (until(messages)) {
        clearTimeout(timer);
        resolve();
        return;
      }
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          if (!message.value) return;
          messages.push({ key: message.key?.toString() ?? null, value: message.value, partition, offset: message.offset });
          if (until(messages)) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

/** Counts the messages currently in a topic (sum of high watermarks minus low). */
export async function topicSize(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}
