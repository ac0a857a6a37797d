import { createRequire } from "node:module";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  correctedSendMessages,
  groupMessagesPerPartition,
  kafkajsSendMessages,
  producersUsingCorrection,
} from "./kafkajs-send-messages.ts";
import type { SendMessagesDeps } from "./kafkajs-send-messages.ts";
import { createKafka, kafkaClientConfig } from "./kafka.ts";

const require = createRequire(import.meta.url);
const createRetry = require("kafkajs/src/retry") as (o: object) => SendMessagesDeps["retrier"];
const { KafkaJSProtocolError } = require("kafkajs/src/errors") as { KafkaJSProtocolError: new (e: object) => Error };
const shippedGrouping = require("kafkajs/src/producer/groupMessagesPerPartition") as typeof groupMessagesPerPartition;
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

/**
 * One broker that was just restarted: it answers, but leads none of its partitions until `readyAt`
 * (ms on the fake clock) and answers every produce before then with NOT_LEADER_FOR_PARTITION.
 */
function restartedBroker(readyAt: number) {
  const c = cluster();
  const leaders: Record<number, number> = { 0: 1, 1: 1, 2: 1 };
  let attempts = 0;
  const broker = {
    nodeId: 1,
    async produce(req: Record<string, unknown>) {
      attempts++;
      if (Date.now() < readyAt) throw notLeader();
      const topicData = req["topicData"] as { topic: string; partitions: { partition: number }[] }[];
      c.produced.push({ broker: 1, partitions: topicData.flatMap((t) => t.partitions.map((p) => Number(p.partition))) });
      return {
        topics: topicData.map((t) => ({
          topicName: t.topic,
          partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: "0" })),
        })),
      };
    },
  };
  const deps: SendMessagesDeps = {
    ...c.deps,
    cluster: {
      ...c.deps.cluster,
      findTopicPartitionMetadata: () => [0, 1, 2].map((p) => ({ partitionId: p, leader: leaders[p] as number })),
      findLeaderForPartitions: (_topic, partitions) => ({ 1: partitions.map(Number) }),
      findBroker: async () => broker,
    },
    // The producer's retrier exactly as kafkajs makes it from the services' client settings
    // (Object.assign over kafkajs's defaults, which vitest's NODE_ENV=test changes).
    retrier: createRetry(kafkaClientConfig({ brokers: ["127.0.0.1:9"], clientId: "retry-budget" }).retry ?? {}),
  };
  return { deps, produced: c.produced, sequences: c.sequences, attempts: () => attempts };
}

describe("a send during a broker restart, with the services' retry settings", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  /** Runs the send on a fake clock (retry jitter fixed at its middle) and says how it ended, and when. */
  async function sendOnFakeClock(deps: SendMessagesDeps) {
    vi.useFakeTimers({ now: 0 });
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    let outcome: { ok: true; answers: unknown[] } | { ok: false; error: Error } | null = null;
    let endedAt = -1;
    void correctedSendMessages(deps)(request).then(
      (answers) => {
        outcome = { ok: true, answers };
        endedAt = Date.now();
      },
      (error: Error) => {
        outcome = { ok: false, error };
        endedAt = Date.now();
      },
    );
    for (let t = 0; t < 600 && outcome === null; t++) await vi.advanceTimersByTimeAsync(1_000);
    return { outcome: outcome as { ok: true; answers: unknown[] } | { ok: false; error: Error } | null, endedAt };
  }

  it("rides out a restarted broker that takes 20 s to lead its partitions again", async () => {
    const b = restartedBroker(20_000);
    const { outcome, endedAt } = await sendOnFakeClock(b.deps);
    expect(outcome?.ok ? "sent" : `failed: ${outcome?.error.name} ${outcome?.error.message}`).toBe("sent");
    expect(endedAt).toBeGreaterThanOrEqual(20_000);
    expect(b.produced).toEqual([{ broker: 1, partitions: [0, 1, 2] }]);
    // Every failed attempt gave its sequence numbers back: the broker sees each batch once, at 0.
    expect([0, 1, 2].map((p) => b.sequences.get(`feed:${p}`))).toEqual([1, 1, 1]);
  });

  it("gives up only when its retries are spent, tens of seconds later, naming NOT_LEADER_FOR_PARTITION", async () => {
    const b = restartedBroker(Number.POSITIVE_INFINITY);
    const { outcome, endedAt } = await sendOnFakeClock(b.deps);
    expect(outcome?.ok).toBe(false);
    const error = (outcome as { error: Error & { cause?: { type?: string } } }).error;
    expect(error.name).toBe("KafkaJSNumberOfRetriesExceeded");
    expect(error.cause?.type).toBe("NOT_LEADER_FOR_PARTITION");
    expect(b.attempts()).toBe(9); // the first attempt and 8 retries
    expect(endedAt).toBeGreaterThanOrEqual(45_000);
    expect(b.produced).toEqual([]);
    expect([0, 1, 2].map((p) => b.sequences.get(`feed:${p}`) ?? 0)).toEqual([0, 0, 0]);
  });
});

describe("groupMessagesPerPartition", () => {
  it("groups as kafkajs's own does, asking the partitioner once per message in order", () => {
    const messages = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(String(i)) }));
    const partitionMetadata = [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }];
    const asked: (string | undefined)[][] = [[], []];
    const partitionerFor = (log: (string | undefined)[]) => (o: { message: { key?: string } }) => {
      log.push(o.message.key);
      return (Number(o.message.key?.slice(1)) * 7) % 3;
    };
    const ours = groupMessagesPerPartition({ topic: "t", partitionMetadata, messages, partitioner: partitionerFor(asked[0] ?? []) });
    const shipped = shippedGrouping({ topic: "t", partitionMetadata, messages, partitioner: partitionerFor(asked[1] ?? []) });
    expect(ours).toEqual(shipped);
    expect(Object.keys(ours)).toEqual(["0", "1", "2"]);
    expect(asked[0]).toEqual(messages.map((m) => m.key));
    expect(groupMessagesPerPartition({ topic: "t", partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
  });
});
