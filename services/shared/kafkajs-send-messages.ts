/**
 * A correction to kafkajs 2.2.4's produce path (src/producer/sendMessages.js), put in place of
 * kafkajs's own before its producer module loads (services/shared/kafka.ts and kafka-access.ts
 * import this module first). kafkajs remembers which *brokers* answered a send and, when it retries
 * after an error, sends nothing to a broker that already answered. When the partition that failed
 * (NOT_LEADER_FOR_PARTITION: its leader was stopped) has meanwhile moved to a broker that answered
 * for other partitions, its messages are never sent and the send still resolves: the records are
 * silently lost, and because the idempotent producer's sequence numbers were rolled back, the
 * broker accepts the next send without a gap error. The chaos run (test/chaos/) found a feed chain
 * with records missing after a broker's controlled shutdown. Upstream: tulios/kafkajs report 1303
 * and pull request 1798 (both open; kafkajs gets no releases).
 *
 * Invariant kept here: a send resolves only once every partition it carries was acknowledged.
 * Acknowledgements are kept per partition, not per broker; a retry sends every partition not yet
 * acknowledged to its current leader, whichever broker that is; messages keep the partitions they
 * were given on the first attempt (a keyless message is not moved to another partition by a
 * retry); a partition with no known leader is retried, never skipped; and a retry waits until every
 * request of the attempt before it has settled, so no partition is in flight twice. Everything else
 * (sequence numbers, transactions, the retry policy, errors) is kafkajs's own code path unchanged.
 */
import { createRequire } from "node:module";
import Module from "node:module";

const require = createRequire(import.meta.url);
const SEND_MESSAGES = require.resolve("kafkajs/src/producer/sendMessages.js");
const MESSAGE_PRODUCER = require.resolve("kafkajs/src/producer/messageProducer.js");
/** Marks our factory, so that loading this module again (another test file in the same worker) is a no-op. */
const CORRECTED = Symbol.for("hashrelay.kafkajs.sendMessages.corrected");

interface Broker {
  readonly nodeId: number;
  produce(request: Record<string, unknown>): Promise<unknown>;
}

interface ProducedMessage {
  readonly partition?: number;
}

interface Cluster {
  refreshMetadataIfNecessary(): Promise<void>;
  refreshMetadata(): Promise<void>;
  isConnected(): boolean;
  connect(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  removeBroker(o: { host: string; port: number }): void;
  findTopicPartitionMetadata(topic: string): { partitionId: number; leader: number | null }[];
  findLeaderForPartitions(topic: string, partitions: string[]): Record<string, number[]>;
  findBroker(o: { nodeId: string }): Promise<Broker>;
}

interface EosManager {
  acquireBrokerLock(b: Broker): Promise<void>;
  releaseBrokerLock(b: Broker): Promise<void>;
  isTransactional(): boolean;
  addPartitionsToTransaction(topicData: TopicData[]): Promise<void>;
  getSequence(topic: string, partition: number): number;
  updateSequence(topic: string, partition: number, increment: number): void;
  getTransactionalId(): string;
  getProducerId(): number;
  getProducerEpoch(): number;
}

interface TopicData {
  readonly topic: string;
  readonly partitions: { partition: number; messages: ProducedMessage[]; firstSequence?: number }[];
}

type Retrier = <T>(fn: (bail: (e: Error) => void, retryCount: number, retryTime: number) => Promise<T>) => Promise<T>;

export interface SendMessagesDeps {
  readonly logger: { debug(m: string, extra?: object): void; error(m: string, extra?: object): void };
  readonly cluster: Cluster;
  readonly partitioner: (o: { topic: string; partitionMetadata: unknown[]; message: ProducedMessage }) => number;
  readonly eosManager: EosManager;
  readonly retrier: Retrier;
}

export interface SendRequest {
  readonly acks: number;
  readonly timeout?: number;
  readonly compression?: unknown;
  readonly topicMessages: { topic: string; messages: ProducedMessage[] }[];
}

export type SendMessages = (request: SendRequest) => Promise<unknown[]>;
type SendMessagesFactory = ((deps: SendMessagesDeps) => SendMessages) & { [CORRECTED]?: true };

const { KafkaJSMetadataNotLoaded } = require("kafkajs/src/errors") as { KafkaJSMetadataNotLoaded: new (m: string) => Error };
const { staleMetadata } = require("kafkajs/src/protocol/error") as { staleMetadata: (e: unknown) => boolean };
/**
 * kafkajs's groupMessagesPerPartition, in one pass: the shipped one copies a partition's whole
 * array for every message it adds (quadratic in a send's size; a distribution round's 2,000 feed
 * records made it a twelfth of everything the process allocated). Same result: the partitioner
 * asked once per message in order, each partition's messages in their order.
 */
export function groupMessagesPerPartition<M>(o: {
  topic: string;
  partitionMetadata: unknown[];
  messages: M[];
  partitioner: (o: { topic: string; partitionMetadata: unknown[]; message: M }) => number;
}): Record<string, M[]> {
  const grouped: Record<string, M[]> = {};
  if (o.partitionMetadata.length === 0) return grouped;
  for (const message of o.messages) {
    const partition = o.partitioner({ topic: o.topic, partitionMetadata: o.partitionMetadata, message });
    const current = grouped[partition];
    if (current) current.push(message);
    else grouped[partition] = [message];
  }
  return grouped;
}
const responseSerializer = require("kafkajs/src/producer/responseSerializer") as (
  response: unknown,
) => { topicName: string; partition: number }[];

/** kafkajs's own sendMessages, as shipped (for the test that shows what it loses). */
export const kafkajsSendMessages = require(SEND_MESSAGES) as SendMessagesFactory;

let producersMade = 0;
/** How many producers were made with the correction (each kafkajs producer makes its sendMessages once). */
export const producersUsingCorrection = (): number => producersMade;

export const correctedSendMessages: SendMessagesFactory = ({ logger, cluster, partitioner, eosManager, retrier }) => {
  producersMade++;
  return async ({ acks, timeout, compression, topicMessages }) => {
    /** topic -> partition -> its messages, fixed by the first attempt. */
    const assigned = new Map<string, Record<string, ProducedMessage[]>>();
    /** "topic\0partition" -> the broker's answer for it. */
    const acknowledged = new Map<string, unknown[]>();
    const ack = (topic: string, partition: number | string) => `${topic}\0${partition}`;

    const attempt = async (): Promise<void> => {
      await cluster.refreshMetadataIfNecessary();
      const perLeader = new Map<
        string,
        { topic: string; partitions: number[]; messagesPerPartition: Record<string, ProducedMessage[]> }[]
      >();
      for (const { topic, messages } of topicMessages) {
        const partitionMetadata = cluster.findTopicPartitionMetadata(topic);
        if (partitionMetadata.length === 0) {
          logger.debug("Producing to topic without metadata", { topic });
          throw new KafkaJSMetadataNotLoaded("Producing to topic without metadata");
        }
        let messagesPerPartition = assigned.get(topic);
        if (!messagesPerPartition) {
          messagesPerPartition = groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner });
          assigned.set(topic, messagesPerPartition);
        }
        const pending = Object.keys(messagesPerPartition).filter((p) => !acknowledged.has(ack(topic, p)));
        const partitionsPerLeader = cluster.findLeaderForPartitions(topic, pending);
        const led = new Set(Object.values(partitionsPerLeader).flat().map(String));
        // kafkajs leaves out a partition it has no metadata for: here that is a reason to retry.
        if (pending.some((p) => !led.has(p))) throw new KafkaJSMetadataNotLoaded(`no leader known for a partition of ${topic}`);
        for (const [nodeId, partitions] of Object.entries(partitionsPerLeader)) {
          perLeader.set(nodeId, [...(perLeader.get(nodeId) ?? []), { topic, partitions, messagesPerPartition }]);
        }
      }
      const requests = [...perLeader].map(async ([nodeId, forBroker]) => {
        const broker = await cluster.findBroker({ nodeId });
        await eosManager.acquireBrokerLock(broker);
        try {
          // What an earlier request acknowledged while this one waited for the lock is not sent again.
          const topicData: TopicData[] = forBroker
            .map(({ topic, partitions, messagesPerPartition }) => ({
              topic,
              partitions: partitions
                .filter((p) => !acknowledged.has(ack(topic, p)))
                .map((partition) => ({ partition, messages: messagesPerPartition[partition] as ProducedMessage[] })),
            }))
            .filter((t) => t.partitions.length > 0);
          if (topicData.length === 0) return;
          if (eosManager.isTransactional()) await eosManager.addPartitionsToTransaction(topicData);
          for (const { topic, partitions } of topicData) {
            for (const entry of partitions) {
              entry.firstSequence = eosManager.getSequence(topic, entry.partition);
              eosManager.updateSequence(topic, entry.partition, entry.messages.length);
            }
          }
          let response: unknown;
          try {
            response = await broker.produce({
              transactionalId: eosManager.isTransactional() ? eosManager.getTransactionalId() : undefined,
              producerId: eosManager.getProducerId(),
              producerEpoch: eosManager.getProducerEpoch(),
              acks,
              timeout,
              compression,
              topicData,
            });
          } catch (e) {
            for (const { topic, partitions } of topicData) {
              for (const entry of partitions) eosManager.updateSequence(topic, entry.partition, -entry.messages.length);
            }
            throw e;
          }
          const answers = acks !== 0 ? responseSerializer(response) : [];
          for (const { topic, partitions } of topicData) {
            for (const { partition } of partitions) {
              acknowledged.set(
                ack(topic, partition),
                answers.filter((a) => a.topicName === topic && Number(a.partition) === Number(partition)),
              );
            }
          }
        } finally {
          await eosManager.releaseBrokerLock(broker);
        }
      });
      const settled = await Promise.allSettled(requests);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;
    };

    return retrier(async (bail, retryCount, retryTime) => {
      await cluster.addMultipleTargetTopics(topicMessages.map(({ topic }) => topic));
      try {
        await attempt();
        return [...acknowledged.values()].flat();
      } catch (err) {
        // kafkajs's own handling of a failed attempt, unchanged.
        const e = err as Error & { host: string; port: number; retriable?: boolean };
        if (e.name === "KafkaJSConnectionClosedError") cluster.removeBroker({ host: e.host, port: e.port });
        if (!cluster.isConnected()) {
          logger.debug(`Cluster has disconnected, reconnecting: ${e.message}`, { retryCount, retryTime });
          await cluster.connect();
          await cluster.refreshMetadata();
          throw e;
        }
        if (
          staleMetadata(e) ||
          e.name === "KafkaJSMetadataNotLoaded" ||
          e.name === "KafkaJSConnectionError" ||
          e.name === "KafkaJSConnectionClosedError" ||
          (e.name === "KafkaJSProtocolError" && e.retriable)
        ) {
          logger.error(`Failed to send messages: ${e.message}`, { retryCount, retryTime });
          await cluster.refreshMetadata();
          throw e;
        }
        logger.error(`${e.message}`, { retryCount, retryTime });
        if (e.retriable) throw e;
        bail(e);
        return [];
      }
    });
  };
};
correctedSendMessages[CORRECTED] = true;

const cached = require.cache[SEND_MESSAGES];
if (!cached) throw new Error("kafkajs sendMessages.js is not in the require cache; review services/shared/kafkajs-send-messages.ts");
if (!(cached.exports as SendMessagesFactory)[CORRECTED]) {
  if (require.cache[MESSAGE_PRODUCER]) {
    // kafkajs's producer already holds the faulty function: a process in this state would lose records silently.
    throw new Error(
      "kafkajs was loaded before services/shared/kafkajs-send-messages.ts: import that module before anything imports kafkajs",
    );
  }
  const replacement = new Module(SEND_MESSAGES);
  replacement.filename = SEND_MESSAGES;
  replacement.loaded = true;
  replacement.exports = correctedSendMessages;
  require.cache[SEND_MESSAGES] = replacement;
}
