import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { correctedSendMessages, kafkajsSendMessages, producersUsingCorrection } from "./kafkajs-send-messages.ts";
import type { SendMessagesDeps } from "./kafkajs-send-messages.ts";
import { createKafka } from "./kafka.ts";

const require = createRequire(import.meta.url);
const createRetry = require("kafkajs/src/retry") as (o: object) => SendMessagesDeps["retrier"];
const { KafkaJSProtocolError } = require("kafkajs/src/errors") as { KafkaJSProtocolError: new (e: object) => Error };
const notLeader = () =>
  new KafkaJSProtocolError({
    type: "NOT_LEADER_FOR_PARTITION",
    code: 6,
    retriable: true,
    message: "This server is not the leader for that topic-partition",
  });

/**
 * A three-partition topic on two brokers; broker 2 leads partition 2 and answers its first produce
 * with NOT_LEADER_FOR_PARTITION, after which partition 2 is led by broker 1 (a controlled shutdown).
 */
function cluster() {
  const leaders: Record<number, number> = { 0: 1, 1: 1, 2: 2 };
  const produced: { broker: number; partitions: number[] }[] = [];
  let failedOnce = false;
  const broker = (nodeId: number) => ({
    nodeId,
    async produce(req: Record<string, unknown>) {
      const topicData = req["topicData"] as { topic: string; partitions: { partition: number }[] }[];
      const partitions = topicData.flatMap((t) => t.partitions.map((p) => Number(p.partition)));
      if (nodeId === 2 && !failedOnce) {
        failedOnce = true;
        leaders[2] = 1;
        throw notLeader();
      }
      produced.push({ broker: nodeId, partitions });
      return {
        topics: topicData.map((t) => ({
          topicName: t.topic,
          partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: "0" })),
        })),
      };
    },
  });
  const brokers = { 1: broker(1), 2: broker(2) } as Record<string, ReturnType<typeof broker>>;
  const sequences = new Map<string, number>();
  const deps: SendMessagesDeps = {
    logger: { debug: () => undefined, error: () => undefined },
    cluster: {
      refreshMetadataIfNecessary: async () => undefined,
      refreshMetadata: async () => undefined,
      isConnected: () => true,
      connect: async () => undefined,
      addMultipleTargetTopics: async () => undefined,
      removeBroker: () => undefined,
      findTopicPartitionMetadata: () => [0, 1, 2].map((p) => ({ partitionId: p, leader: leaders[p] as number })),
      findLeaderForPartitions: (_topic, partitions) => {
        const out: Record<string, number[]> = {};
        for (const p of partitions) {
          const leader = String(leaders[Number(p)]);
          out[leader] = [...(out[leader] ?? []), Number(p)];
        }
        return out;
      },
      findBroker: async ({ nodeId }) => brokers[nodeId] as ReturnType<typeof broker>,
    },
    partitioner: ({ message }) => message.partition as number,
    eosManager: {
      acquireBrokerLock: async () => undefined,
      releaseBrokerLock: async () => undefined,
      isTransactional: () => false,
      addPartitionsToTransaction: async () => undefined,
      getSequence: (t, p) => sequences.get(`${t}:${p}`) ?? 0,
      updateSequence: (t, p, n) => void sequences.set(`${t}:${p}`, (sequences.get(`${t}:${p}`) ?? 0) + n),
      getTransactionalId: () => "",
      getProducerId: () => 1,
      getProducerEpoch: () => 0,
    },
    retrier: createRetry({ retries: 3, initialRetryTime: 1, maxRetryTime: 5 }),
  };
  return { deps, produced, sequences };
}

const request = { acks: -1, topicMessages: [{ topic: "feed", messages: [{ partition: 0 }, { partition: 1 }, { partition: 2 }] }] };

describe("kafkajs produce path under a leader move", () => {
  it("kafkajs 2.2.4 as shipped resolves without ever sending the partition whose leader moved", async () => {
    const c = cluster();
    const answers = (await kafkajsSendMessages(c.deps)(request)) as { partition: number }[];
    expect(answers.map((a) => a.partition).sort()).toEqual([0, 1]);
    expect(c.produced.flatMap((p) => p.partitions).sort()).toEqual([0, 1]);
    // and its sequence was rolled back, so the broker would take the next send without a gap error
    expect(c.sequences.get("feed:2")).toBe(0);
  });

  it("the correction sends it to its new leader and resolves only once every partition is acknowledged", async () => {
    const c = cluster();
    const answers = (await correctedSendMessages(c.deps)(request)) as { partition: number }[];
    expect(answers.map((a) => a.partition).sort()).toEqual([0, 1, 2]);
    expect(c.produced).toEqual([
      { broker: 1, partitions: [0, 1] },
      { broker: 1, partitions: [2] },
    ]);
    expect([0, 1, 2].map((p) => c.sequences.get(`feed:${p}`))).toEqual([1, 1, 1]);
  });

  it("retries a partition no leader is known for instead of leaving it out", async () => {
    const c = cluster();
    let calls = 0;
    const find = c.deps.cluster.findLeaderForPartitions;
    const deps = {
      ...c.deps,
      cluster: { ...c.deps.cluster, findLeaderForPartitions: (t: string, ps: string[]) => (calls++ === 0 ? {} : find(t, ps)) },
    };
    const answers = (await correctedSendMessages(deps)(request)) as { partition: number }[];
    expect(answers).toHaveLength(3);
  });

  it("is what every kafkajs producer of the services uses", () => {
    const before = producersUsingCorrection();
    createKafka({ brokers: ["127.0.0.1:9"], clientId: "correction-check" }).producer();
    expect(producersUsingCorrection()).toBe(before + 1);
  });
});
