/**
 * What one Kafka message costs on this machine at a trickle, with nothing behind it: a producer
 * (acks from all replicas, idempotent, as the services' relays and ingest) sending one small record
 * every --interval-ms and awaiting each, and a consumer group member in its own process (long
 * polls as the services' consumers, offsets committed once a second) receiving it, both over the
 * stack's TLS and SCRAM as the services connect. It prints the CPU per message of the producer,
 * the consumer and the broker (the broker's figure includes its idle work over the same time), the
 * Kafka part of the floor under the pipeline benchmark's trickle (docs/benchmarks.md); with
 * bench/http-floor.ts and bench/pg-round-trips.ts it gives what the pipeline's messages cost
 * before any of its own work.
 *
 *   node bench/kafka-floor.ts [--messages 400] [--interval-ms 50]
 *
 * Needs the local stack (`make up`). Writes bench-results/kafka-floor.json.
 */
import { fork } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { REPO_ROOT } from "../services/shared/config.ts";
import { createDurableProducer } from "../services/shared/kafka.ts";
import { kafkaAs, uniqueName } from "../test/support/stack.ts";
import { cpuUsageMs, pidFile, procCpuSeconds } from "./pipeline/proc.ts";
import { positiveIntegerArgs } from "./pipeline/util.ts";

/** The consumer process: joins a group on the topic, counts what it receives, reports its CPU when asked. */
async function consume(topic: string): Promise<void> {
  const kafka = kafkaAs("kafka-floor-consumer");
  const consumer = kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 2_000, minBytes: 1 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let received = 0;
  await consumer.run({
    autoCommitInterval: 1_000,
    eachBatch: async ({ batch }) => {
      received += batch.messages.length;
    },
  });
  process.on("message", async (m) => {
    if (m === "stop") {
      await consumer.disconnect();
      process.exit(0);
    }
    process.send?.({ cpu: process.cpuUsage(), received });
  });
  process.send?.({ ready: true });
}

async function main(): Promise<void> {
  const args = positiveIntegerArgs("bench/kafka-floor.ts", process.argv.slice(2), { messages: 400, intervalMs: 50 });
  const topic = uniqueName("bench-kafka-floor");
  const kafka = kafkaAs("kafka-floor");
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const producer = createDurableProducer(kafka);
  await producer.connect();
  const value = Buffer.alloc(300, 7);
  const send = () => producer.send({ topic, acks: -1, messages: [{ key: "synthetic", value }] });

  const child = fork(import.meta.filename, ["--consume", topic], { stdio: "inherit" });
  const next = () => new Promise<{ ready?: boolean; cpu?: NodeJS.CpuUsage; received?: number }>((r) => child.once("message", r));
  await next();
  const consumerState = async () => {
    const answer = next();
    child.send("state");
    return answer;
  };
  const waitReceived = async (n: number) => {
    for (;;) {
      const s = await consumerState();
      if ((s.received ?? 0) >= n) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  for (let i = 0; i < 100; i++) await send(); // warm up all three
  await waitReceived(100);
  await new Promise((r) => setTimeout(r, 2_000));

  const brokerPid = pidFile("kafka");
  const b0 = procCpuSeconds(brokerPid);
  const c0 = (await consumerState()).cpu as NodeJS.CpuUsage;
  const p0 = process.cpuUsage();
  for (let i = 0; i < args.messages; i++) {
    await send();
    await new Promise((r) => setTimeout(r, args.intervalMs));
  }
  const produced = cpuUsageMs(process.cpuUsage(p0)) / args.messages;
  const c1 = await waitReceived(100 + args.messages);
  const consumed = (cpuUsageMs(c1.cpu as NodeJS.CpuUsage) - cpuUsageMs(c0)) / args.messages;
  const b1 = procCpuSeconds(brokerPid);
  const broker = b0 === null || b1 === null ? null : ((b1 - b0) * 1000) / args.messages;

  const exited = new Promise((r) => child.once("exit", r));
  child.send("stop");
  await exited;
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  mkdirSync(`${REPO_ROOT}bench-results`, { recursive: true });
  writeFileSync(
    `${REPO_ROOT}bench-results/kafka-floor.json`,
    `${JSON.stringify({ ...args, producerMsPerMessage: produced, consumerMsPerMessage: consumed, brokerMsPerMessage: broker, at: new Date().toISOString() }, null, 2)}\n`,
  );
  process.stdout.write(
    `${args.messages} messages, one every ${args.intervalMs} ms: producer ${produced.toFixed(3)} ms CPU per message ` +
      `(with its timer), consumer ${consumed.toFixed(3)}, broker ${broker === null ? "n/a" : broker.toFixed(3)}\n`,
  );
}

if (process.argv[2] === "--consume" && process.argv[3]) await consume(process.argv[3]);
else await main();
