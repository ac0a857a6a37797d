import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { kafkaDefaultPartitioner, murmur2 } from "./kafka-partitioner.ts";

// kafkajs's own murmur2 (an internal module): the reference this partitioner must agree with.
const kafkajsMurmur2 = createRequire(import.meta.url)("kafkajs/src/producer/partitioners/default/murmur2.js") as (
  k: Buffer | string,
) => number;

describe("kafka partitioner", () => {
  it("hashes every key as kafkajs (and the Java client) does", () => {
    for (let n = 0; n < 20_000; n++) {
      const length = n % 67;
      const key = n % 2 ? randomBytes(length) : randomBytes(length).toString("hex").slice(0, length);
      expect(murmur2(key), String(n)).toBe(kafkajsMurmur2(key));
    }
    // A known value of Kafka's murmur2 (Java's Utils.murmur2("21") is -973932308).
    expect(murmur2("21")).toBe(-973932308);
  });

  it("takes a named partition, hashes a key, and spreads keyless messages over partitions with a leader", () => {
    const partition = kafkaDefaultPartitioner();
    const partitionMetadata = [0, 1, 2, 3, 4, 5].map((partitionId) => ({
      partitionId,
      leader: partitionId === 2 ? -1 : 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));
    const at = (message: { key?: string | null; value: string; partition?: number }) =>
      partition({ topic: "t", partitionMetadata, message });
    expect(at({ value: "v", partition: 4 })).toBe(4);
    expect(at({ key: "md5:abc", value: "v" })).toBe((murmur2("md5:abc") & 0x7fffffff) % 6);
    const keyless = new Set(Array.from({ length: 50 }, () => at({ key: null, value: "v" })));
    expect([...keyless].sort()).toEqual([0, 1, 3, 4, 5]);
  });
});
