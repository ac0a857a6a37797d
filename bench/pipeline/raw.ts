/**
 * Measurement 1 of the pipeline benchmark, the raw baseline: kafkajs alone, nothing else running.
 * The bytes ingest would publish are produced to a topic with the settings of hashes.submitted.v1
 * and consumed back by a consumer group; then the same producer at --rate gives the produce →
 * consume latency. The pipeline's figures are reported against these.
 */
import type { Message } from "kafkajs";
import { loadavg } from "node:os";
import { uniqueName } from "../../test/support/stack.ts";
import type { Bench } from "./context.ts";
import type { Setup } from "./setup.ts";
import { fmt, log, sleep, summarize } from "./util.ts";
import type { Summary } from "./util.ts";
import { BATCH, encodeItems, makeItems, steadyLoad } from "./workload.ts";
import type { SteadyResult } from "./workload.ts";

export interface RawResult {
  produceSeconds: number;
  /** From joining the group to the last record. */
  consumeSeconds: number;
  /** Records consumed: the warm-up batch and --count. */
  bulkTotal: number;
  steady: SteadyResult;
  latency: Summary;
  loadAfter: number[];
}

export async function rawBaseline(b: Bench, s: Setup): Promise<RawResult> {
  const { args } = b;
  const rawMessages = signRawMessages(b, s);
  const { bulkTotal, produceSeconds: rawProduceSeconds } = await produceRaw(b, s, rawMessages);

  log("  1. raw: consume with a consumer group...");
  const consumer = await startRawConsumer(b, s, bulkTotal);
  const rawConsumeSeconds = await consumer.bulkSeconds();

  log(`  1. raw: steady ${args.rate}/s for ${args.seconds} s, produce → consume latency...`);
  const rawSteady = await steadyRaw(b, s, rawMessages, consumer);
  await consumer.disconnect();
  const rawLatency = summarize(consumer.latencies);
  const loadAfterRaw = loadavg();
  log(
    `     produce ${fmt(args.count / rawProduceSeconds)}/s, consume ${fmt(bulkTotal / rawConsumeSeconds)}/s, latency p50 ${rawLatency.p50} ms p99 ${rawLatency.p99} ms`,
  );
  return {
    produceSeconds: rawProduceSeconds,
    consumeSeconds: rawConsumeSeconds,
    bulkTotal,
    steady: rawSteady,
    latency: rawLatency,
    loadAfter: loadAfterRaw,
  };
}

/** --count signed submissions, encoded as the bytes ingest would publish. */
function signRawMessages(b: Bench, s: Setup): Message[] {
  log(`  signing ${fmt(b.args.count)} submissions for the raw baseline (random digests)...`);
  const t = Date.now();
  const rawItems = makeItems(s.signer, b.args.count, "raw");
  const rawMessages = encodeItems(b.codec, rawItems);
  log(`  signed and encoded in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return rawMessages;
}

/** An untimed warm-up batch, then every message in sequential batches, timed; bulkTotal counts both. */
async function produceRaw(b: Bench, s: Setup, rawMessages: Message[]): Promise<{ bulkTotal: number; produceSeconds: number }> {
  const { args, producer } = b;
  const { rawNames } = s;
  await producer.connect();
  const RAW_WARMUP = Math.min(BATCH, args.count);
  await producer.send({ topic: rawNames.submitted, acks: -1, messages: rawMessages.slice(0, RAW_WARMUP) });
  log("  1. raw: produce...");
  const t = Date.now();
  for (let i = 0; i < rawMessages.length; i += BATCH)
    await producer.send({ topic: rawNames.submitted, acks: -1, messages: rawMessages.slice(i, i + BATCH) });
  return { bulkTotal: RAW_WARMUP + args.count, produceSeconds: (Date.now() - t) / 1000 };
}

/**
 * The raw topic's consumer group. A record without a sent-at header is one of the bulk; one with it
 * is a steady record, and its latency (now - sent-at) is collected.
 */
interface RawConsumer {
  readonly latencies: number[];
  /** Waits for the whole bulk; the seconds from joining the group to its last record. */
  bulkSeconds(): Promise<number>;
  /** Resolves once `count` steady records have been consumed; call before sending them. */
  steadyDone(count: number): Promise<void>;
  disconnect(): Promise<void>;
}

async function startRawConsumer(b: Bench, s: Setup, bulkTotal: number): Promise<RawConsumer> {
  const { kafka, res } = b;
  const { rawNames } = s;
  const rawGroup = uniqueName("bench-raw");
  res.groups.push(rawGroup);
  res.saveState();
  const rawConsumer = kafka.consumer({ groupId: rawGroup, maxWaitTimeInMs: 500, sessionTimeout: 6000, heartbeatInterval: 2000 });
  res.consumers.push(rawConsumer);
  let joinedAt = 0;
  let bulkReceived = 0;
  let bulkLastAt = 0;
  const rawLatencies: number[] = [];
  let onBulkDone: () => void = () => undefined;
  let onSteadyProgress: () => void = () => undefined;
  const bulkDone = new Promise<void>((r) => (onBulkDone = r));
  rawConsumer.on(rawConsumer.events.GROUP_JOIN, () => (joinedAt ||= Date.now()));
  await rawConsumer.connect();
  await rawConsumer.subscribe({ topic: rawNames.submitted, fromBeginning: true });
  void rawConsumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages) {
        const h = m.headers?.["sent-at"];
        const sentAt = Buffer.isBuffer(h) ? Number(h.toString()) : typeof h === "string" ? Number(h) : NaN;
        if (Number.isFinite(sentAt)) {
          rawLatencies.push(now - sentAt);
        } else if (++bulkReceived === bulkTotal) {
          bulkLastAt = now;
          onBulkDone();
        }
      }
      if (rawLatencies.length) onSteadyProgress();
    },
  });
  return {
    latencies: rawLatencies,
    bulkSeconds: async () => {
      await Promise.race([
        bulkDone,
        sleep(120_000).then(() => Promise.reject(new Error(`raw consume: ${bulkReceived} of ${bulkTotal} records after 120 s`))),
      ]);
      return (bulkLastAt - joinedAt) / 1000;
    },
    steadyDone: (count) => new Promise<void>((r) => (onSteadyProgress = () => rawLatencies.length >= count && r())),
    disconnect: () => rawConsumer.disconnect(),
  };
}

/** The same producer at --rate for --seconds, each record stamped with its send time; waits until all are consumed. */
async function steadyRaw(b: Bench, s: Setup, rawMessages: Message[], consumer: RawConsumer): Promise<SteadyResult> {
  const { args, steadyCount, producer } = b;
  const { rawNames } = s;
  const steadyRawDone = consumer.steadyDone(steadyCount);
  const rawSendErrors: string[] = [];
  const rawSteady = await steadyLoad({
    total: steadyCount,
    rate: args.rate,
    tickMs: args.tickMs,
    maxInFlight: 64,
    send: async (from, to) => {
      const sentAt = String(Date.now());
      const messages = [];
      for (let i = from; i < to; i++) {
        const m = rawMessages[i % rawMessages.length] as Message;
        messages.push({ key: m.key ?? null, value: m.value, headers: { "sent-at": sentAt } });
      }
      await producer
        .send({ topic: rawNames.submitted, acks: -1, messages })
        .catch((err: unknown) => void rawSendErrors.push((err as Error).message));
    },
  });
  await Promise.race([
    steadyRawDone,
    sleep(60_000).then(() =>
      Promise.reject(new Error(`raw steady: ${consumer.latencies.length} of ${steadyCount} records consumed after 60 s`)),
    ),
  ]);
  if (rawSendErrors.length) throw new Error(`raw steady: ${rawSendErrors.length} sends failed: ${rawSendErrors[0]}`);
  return rawSteady;
}
