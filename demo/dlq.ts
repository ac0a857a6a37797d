/** Reads everything currently on a rejection topic (the demo's DLQ summary). */
import type { Kafka } from "kafkajs";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import type { Rejection } from "../services/shared/wire/records.ts";

export async function readTopicOnce(kafka: Kafka, topic: string): Promise<Rejection[]> {
  const codec = new AvroCodec();
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = ends.reduce((n, e) => n + Number(e.high) - Number(e.low), 0);
  const out: Rejection[] = [];
  if (total === 0) return out;
  const consumer = kafka.consumer({ groupId: `demo-dlq-${Date.now()}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 15_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value) out.push(codec.decode("Rejection", message.value).value);
        if (out.length >= total) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return out;
}
