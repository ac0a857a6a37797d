/**
 * The producers' partitioner: Kafka's default (as the Java client, and kafkajs's
 * DefaultPartitioner): a message's own partition if it names one, else murmur2 of its key modulo
 * the topic's partitions, else round robin over the partitions with a leader. Only the hash is
 * different code: kafkajs computes murmur2 with emulated 64-bit integers, a cost the produce path
 * feels; Math.imul gives the same 32-bit result far more cheaply (docs/benchmarks.md has the
 * figures). The same key must keep landing on the same partition whichever client wrote it:
 * kafka-partitioner.test.ts holds this hash to kafkajs's on random keys.
 */
import { randomInt } from "node:crypto";
import type { ICustomPartitioner } from "kafkajs";

const M = 0x5bd1e995;
const SEED = 0x9747b28c;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of a key, as a signed 32-bit int. */
export function murmur2(key: Buffer | string): number {
  const data = typeof key === "string" ? Buffer.from(key) : key;
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[whole + 2] as number) << 16;
  if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[whole] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const toPositive = (x: number): number => x & 0x7fffffff;

export const kafkaDefaultPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined) return toPositive(murmur2(message.key)) % partitionMetadata.length;
    const counter = (counters.get(topic) ?? randomInt(0x7fffffff)) + 1;
    counters.set(topic, counter);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return (available[toPositive(counter) % available.length] as { partitionId: number }).partitionId;
    return toPositive(counter) % partitionMetadata.length;
  };
};
