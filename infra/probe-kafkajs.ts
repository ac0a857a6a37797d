/**
 * Does kafkajs 2.2.4 fully work against the running broker? Exercises what hashrelay needs and exits
 * non-zero on the first failure:
 *   1. admin: create a 4-partition topic, list, describe the cluster
 *   2. an idempotent producer (idempotent, acks -1, maxInFlightRequests 1) sends keyed records
 *   3. two consumers join one consumer group, share the partitions after a rebalance, consume
 *      everything, commit offsets; the group's committed offsets must equal the log end offsets
 *   4. a new member of the same group resumes from the committed offsets (sees only new records)
 *   5. a transactional producer commits one transaction and aborts another; a read_committed
 *      consumer sees only the committed records
 *   6. topic provisioning: compacted topic, describe/alter configs, createPartitions, offsets by
 *      timestamp, and a transaction that commits a group's offsets (sendOffsets)
 *   7. admin: delete the groups and topics
 * Run: node infra/probe-kafkajs.ts   (broker, TLS and admin principal from the environment, else .stack/env)
 */
import { Kafka, logLevel } from "kafkajs";
import type { Consumer, KafkaMessage, LogEntry, Producer } from "kafkajs";
import { effectiveEnv, kafkaConfigShape, loadConfig } from "../services/shared/config.ts";
import { ADMIN_PRINCIPAL } from "../services/shared/kafka-access.ts";
import { kafkaConnection, kafkaSecurity } from "../services/shared/kafka.ts";

// The local broker takes TLS and SASL/SCRAM only: connect as its admin principal, like bin/hashrelay.
const connection = kafkaConnection(loadConfig("hashrelay-probe", kafkaConfigShape, effectiveEnv(process.env, ADMIN_PRINCIPAL)));
const brokers = connection.brokers;
const run = `${Date.now()}-${process.pid}`;
const topic = `probe.kafkajs.${run}`;
const txnTopic = `probe.kafkajs.txn.${run}`;
const groupId = `probe-group-${run}`;
const txnGroupId = `probe-txn-group-${run}`;
const eosGroupId = `probe-eos-group-${run}`;
const PARTITIONS = 4;
const started = Date.now();

const kafkaLogErrors: string[] = [];
const kafka = new Kafka({
  clientId: "hashrelay-probe",
  brokers,
  ...kafkaSecurity(connection),
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { retries: 5, initialRetryTime: 200 },
  logLevel: logLevel.WARN,
  logCreator:
    () =>
    ({ level, log }: LogEntry) => {
      const { message, ...rest } = log;
      const name = level === logLevel.ERROR ? "ERROR" : level === logLevel.WARN ? "WARN" : "INFO";
      const line = `[kafkajs ${name}] ${message} ${JSON.stringify(rest)}`;
      if (level === logLevel.ERROR) kafkaLogErrors.push(line);
      console.error(line);
    },
});

function step(msg: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
}

function fail(msg: string): never {
  throw new Error(msg);
}

async function waitFor(label: string, cond: () => boolean, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for: ${label}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

type Seen = { member: string; partition: number; offset: string; value: string };
type Admin = ReturnType<typeof kafka.admin>;
type Send = (from: number, count: number) => Promise<void>;

/** The members of the probe's consumer groups, what each was assigned and every record delivered to them. */
interface Members {
  readonly seen: Seen[];
  readonly assignments: Map<string, number[]>;
  join(member: string, group?: string): Promise<Consumer>;
  unique(): number;
}

function groupMembers(): Members {
  const seen: Seen[] = [];
  const assignments = new Map<string, number[]>();
  const join = async (member: string, group = groupId): Promise<Consumer> => {
    // kafkajs heartbeats between fetches, so a short fetch wait makes rebalances quick
    const consumer = kafka.consumer({
      groupId: group,
      heartbeatInterval: 500,
      sessionTimeout: 10000,
      rebalanceTimeout: 20000,
      maxWaitTimeInMs: 500,
    });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const parts = e.payload.memberAssignment[topic] ?? [];
      assignments.set(member, parts);
      step(`${member} joined (leader ${e.payload.isLeader}): partitions [${parts.join(",")}]`);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
        seen.push({ member, partition, offset: message.offset, value: message.value?.toString() ?? "" });
      },
    });
    return consumer;
  };
  const unique = (): number => new Set(seen.map((s) => `${s.partition}:${s.offset}`)).size;
  return { seen, assignments, join, unique };
}

/** 1. admin: create the probe topics and check that listTopics and the metadata show them. */
async function createTopics(admin: Admin): Promise<void> {
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic, numPartitions: PARTITIONS, replicationFactor: 1 },
      { topic: txnTopic, numPartitions: 1, replicationFactor: 1 },
    ],
  });
  if (!created) fail("createTopics returned false (topic already existed?)");
  const topics = await admin.listTopics();
  if (!topics.includes(topic) || !topics.includes(txnTopic)) fail("created topics missing from listTopics");
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitionCount = meta.topics[0]?.partitions.length ?? 0;
  if (partitionCount !== PARTITIONS) fail(`expected ${PARTITIONS} partitions, metadata shows ${partitionCount}`);
  step(`created ${topic} (${PARTITIONS} partitions) and ${txnTopic}`);
}

/** 2. an idempotent producer; the returned send writes keyed records m<from>..m<from+count-1>. */
async function idempotentProducer(): Promise<{ producer: Producer; send: Send }> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const send = async (from: number, count: number): Promise<void> => {
    const messages = Array.from({ length: count }, (_, i) => ({
      key: `k${(from + i) % 16}`,
      value: `m${from + i}`,
      headers: { probe: "1" },
    }));
    const res = await producer.send({ topic, acks: -1, messages });
    for (const r of res) if (r.errorCode !== 0) fail(`produce error code ${r.errorCode} on partition ${r.partition}`);
  };
  return { producer, send };
}

/** 3. two consumers share the partitions after a rebalance, consume everything and commit the log end offsets. */
async function consumeInOneGroup(admin: Admin, members: Members, send: Send): Promise<void> {
  const { seen, assignments } = members;
  const a = await members.join("consumer-A");
  await waitFor("consumer-A to receive records", () => seen.length > 0);
  const b = await members.join("consumer-B");
  await waitFor(
    "both members to hold partitions after the rebalance",
    () =>
      (assignments.get("consumer-A")?.length ?? 0) > 0 &&
      (assignments.get("consumer-B")?.length ?? 0) > 0 &&
      (assignments.get("consumer-A")?.length ?? 0) + (assignments.get("consumer-B")?.length ?? 0) === PARTITIONS,
  );
  const before = seen.length;
  await send(100, 100);
  step("sent 100 more records after the rebalance");
  await waitFor("all 200 records to be consumed", () => members.unique() >= 200);
  const late = seen.slice(before);
  const lateA = late.filter((s) => s.member === "consumer-A").length;
  const lateB = late.filter((s) => s.member === "consumer-B").length;
  if (lateA === 0 || lateB === 0) fail(`after the rebalance both members should consume (A ${lateA}, B ${lateB})`);
  step(`consumed 200 distinct records (${seen.length} deliveries; after the rebalance A ${lateA}, B ${lateB})`);

  await Promise.all([a.disconnect(), b.disconnect()]); // commits the resolved offsets, leaves the group
  const ends = await admin.fetchTopicOffsets(topic);
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committedParts = committed[0]?.partitions ?? [];
  for (const end of ends) {
    const c = committedParts.find((p) => p.partition === end.partition);
    if (!c || c.offset !== end.high) fail(`partition ${end.partition}: committed ${c?.offset} != log end ${end.high}`);
  }
  step(`committed offsets equal the log end offsets: ${ends.map((e) => `${e.partition}:${e.high}`).join(" ")}`);
}

/** 4. a new member of the group resumes from the committed offsets and sees only new records. */
async function resumeFromCommitted(members: Members, send: Send): Promise<void> {
  const { seen, assignments } = members;
  const resumedFrom = seen.length;
  const c = await members.join("consumer-C");
  await waitFor("consumer-C to be assigned all partitions", () => (assignments.get("consumer-C")?.length ?? 0) === PARTITIONS);
  await send(200, 4);
  await waitFor("consumer-C to receive the 4 new records", () => seen.length - resumedFrom >= 4);
  await new Promise((r) => setTimeout(r, 1000));
  const resumed = seen
    .slice(resumedFrom)
    .map((s) => s.value)
    .sort();
  if (resumed.join() !== ["m200", "m201", "m202", "m203"].join()) {
    fail(`consumer-C should see only m200..m203 after the commit, saw ${resumed.length}: ${resumed.slice(0, 8).join(",")}`);
  }
  await c.disconnect();
}

/** 5. transactions: a read_committed consumer sees the committed transaction and not the aborted one. */
async function checkTransactions(): Promise<void> {
  const txProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, transactionalId: `probe-tx-${run}` });
  await txProducer.connect();
  const t1 = await txProducer.transaction();
  await t1.send({ topic: txnTopic, acks: -1, messages: [{ value: "c1" }, { value: "c2" }, { value: "c3" }] });
  await t1.commit();
  const t2 = await txProducer.transaction();
  await t2.send({ topic: txnTopic, acks: -1, messages: [{ value: "a1" }, { value: "a2" }] });
  await t2.abort();
  await txProducer.disconnect();
  const txnSeen: string[] = [];
  const tc = kafka.consumer({ groupId: txnGroupId, readUncommitted: false, heartbeatInterval: 500, maxWaitTimeInMs: 500 });
  await tc.connect();
  await tc.subscribe({ topics: [txnTopic], fromBeginning: true });
  await tc.run({ eachMessage: async ({ message }) => void txnSeen.push(message.value?.toString() ?? "") });
  await waitFor("read_committed consumer to see the committed transaction", () => txnSeen.length >= 3);
  await new Promise((r) => setTimeout(r, 1500));
  await tc.disconnect();
  if (txnSeen.join() !== "c1,c2,c3") fail(`read_committed consumer saw ${txnSeen.join()} (want c1,c2,c3)`);
  step("transactional producer: committed c1..c3 visible, aborted a1,a2 hidden");
}

/** 6a. what topic provisioning uses: a compacted topic, describe/alter its configs, more partitions, offsets by timestamp. */
async function checkTopicProvisioning(admin: Admin, compacted: string): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: compacted, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }],
  });
  const resource = { type: 2 /* ConfigResourceTypes.TOPIC */, name: compacted };
  const cfg = await admin.describeConfigs({ resources: [{ ...resource, configNames: ["cleanup.policy"] }], includeSynonyms: false });
  const policy = cfg.resources[0]?.configEntries.find((e) => e.configName === "cleanup.policy")?.configValue;
  if (policy !== "compact") fail(`describeConfigs: cleanup.policy is ${policy}, want compact`);
  await admin.alterConfigs({
    validateOnly: false,
    resources: [
      {
        ...resource,
        configEntries: [
          { name: "cleanup.policy", value: "compact" },
          { name: "min.compaction.lag.ms", value: "1000" },
        ],
      },
    ],
  });
  const cfg2 = await admin.describeConfigs({
    resources: [{ ...resource, configNames: ["min.compaction.lag.ms"] }],
    includeSynonyms: false,
  });
  const lag = cfg2.resources[0]?.configEntries.find((e) => e.configName === "min.compaction.lag.ms")?.configValue;
  if (lag !== "1000") fail(`alterConfigs: min.compaction.lag.ms is ${lag}, want 1000`);
  await admin.createPartitions({ topicPartitions: [{ topic: compacted, count: 2 }] });
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, started);
  if (byTime.length !== PARTITIONS) fail(`fetchTopicOffsetsByTimestamp returned ${byTime.length} partitions`);
}

/** 6b. a transaction that also commits a group's offsets (sendOffsets), visible once the commit markers are written. */
async function checkTransactionalOffsets(admin: Admin, compacted: string): Promise<void> {
  const eos = kafka.producer({ idempotent: true, maxInFlightRequests: 1, transactionalId: `probe-eos-${run}` });
  await eos.connect();
  const t3 = await eos.transaction();
  await t3.send({ topic: compacted, acks: -1, messages: [{ key: "k", value: "v" }] });
  await t3.sendOffsets({ consumerGroupId: eosGroupId, topics: [{ topic: txnTopic, partitions: [{ partition: 0, offset: "1" }] }] });
  await t3.commit();
  await eos.disconnect();
  // the transaction's offsets become visible once the broker has written the commit markers
  let eosOffset: string | undefined;
  const eosDeadline = Date.now() + 10000;
  while (eosOffset !== "1" && Date.now() < eosDeadline) {
    const o = await admin.fetchOffsets({ groupId: eosGroupId, topics: [txnTopic] });
    eosOffset = o[0]?.partitions[0]?.offset;
    if (eosOffset !== "1") await new Promise((r) => setTimeout(r, 200));
  }
  if (eosOffset !== "1") fail(`sendOffsets: group ${eosGroupId} has committed offset ${eosOffset}, want 1`);
}

/** 7. admin: delete the probe's groups and topics. */
async function cleanUp(admin: Admin, compacted: string): Promise<void> {
  await admin.deleteGroups([groupId, txnGroupId, eosGroupId]);
  await admin.deleteTopics({ topics: [topic, txnTopic, compacted] });
  await admin.disconnect();
  // kafkajs logs rebalances and coordinator retries at ERROR level; they are expected here
  step(`deleted the probe groups and topics (kafkajs logged ${kafkaLogErrors.length} retried error(s))`);
}

async function main(): Promise<void> {
  step(`brokers ${brokers.join(",")}, topic ${topic}`);
  const admin = kafka.admin();
  await admin.connect();
  const cluster = await admin.describeCluster();
  step(`cluster ${cluster.clusterId}: ${cluster.brokers.length} broker(s), controller ${cluster.controller}`);

  await createTopics(admin);
  const { producer, send } = await idempotentProducer();
  await send(0, 100);
  step("idempotent producer sent 100 records (acks -1, maxInFlightRequests 1)");

  const members = groupMembers();
  await consumeInOneGroup(admin, members, send);
  await resumeFromCommitted(members, send);
  await producer.disconnect();
  step("consumer-C resumed at the committed offsets (saw only the 4 new records)");

  await checkTransactions();

  const compacted = `probe.kafkajs.compacted.${run}`;
  await checkTopicProvisioning(admin, compacted);
  await checkTransactionalOffsets(admin, compacted);
  step("compacted topic, describeConfigs, alterConfigs, createPartitions, offsets by time, txn sendOffsets: ok");

  await cleanUp(admin, compacted);
  console.log("PROBE OK");
}

const timer = setTimeout(() => {
  console.error("PROBE FAILED: overall timeout (120 s)");
  process.exit(1);
}, 120_000);

main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (err: unknown) => {
    console.error(`PROBE FAILED: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    process.exit(1);
  },
);
