/**
 * Benchmark: CPU per feed record of the hub's signing (FeedWriter: chain, sign, encode) and of a
 * partner sink's checking (decode and the chain walk: digest, verify, link), in the every-record
 * and the chain-signed forms, for transactions of L records per feed partition. No stack needed:
 * the writer's output goes to an in-memory stand-in, and the sink's walk is pure. Synthetic data only.
 *
 *   node bench/feed-signing.ts [--count 6000] [--runs 1,3,10,30]
 *
 * Prints a table and writes bench-results/feed-signing.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { FeedWriter } from "../services/distribution/feed-writer.ts";
import type { FeedSigning, FeedWrites, HubSigner } from "../services/distribution/feed-writer.ts";
import type { FeedChange } from "../services/distribution/policy.ts";
import type { ChainHead } from "../services/distribution/store.ts";
import { decode, walkChain } from "../services/partner-sink/chain-walk.ts";
import { createLogger } from "../services/shared/logging.ts";
import { topicNames } from "../services/shared/topics.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { GENESIS_DIGEST } from "../services/shared/wire/feed-chain.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw } from "../services/shared/wire/signing.ts";
import { hotlinePolicy, randomHex } from "../test/support/fixtures.ts";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const COUNT = Number(arg("--count", "6000"));
const RUNS = arg("--runs", "1,3,10,30").split(",").map(Number);
const FORMS: FeedSigning[] = ["every-record", "chain"];

const codec = new AvroCodec();
const topics = topicNames("bench");
const keys = generateSigningKeyPair();
const hub: HubSigner = { keyId: "hub:bench", privateKey: privateKeyFromPem(keys.privateKeyPem), pseudonymSecret: "bench-pseudonym-secret" };
const policy = hotlinePolicy("bench-partner", { feedPartitions: 1 });
const sinkCtx = {
  partnerId: policy.partnerId,
  keys: [{ keyId: hub.keyId, publicKey: publicKeyFromRaw(keys.publicKey), validUntil: null }],
  logger: createLogger("bench", "silent"),
  now: new Date(),
};

/** Stands in for the hub database: one chain head, and the feed records queued for Kafka. */
function memoryStore() {
  let heads: ChainHead[] = [];
  const queued: Buffer[] = [];
  return {
    queued,
    heads: () => heads,
    write(w: FeedWrites) {
      if (w.heads.length) heads = w.heads;
      queued.push(...w.outbox.map((m) => m.value));
    },
  };
}

const change = (): FeedChange => ({
  op: "UPSERT",
  entry: { alg: "md5", value: randomHex(16), recordId: randomHex(8), revision: 1, category: "A", contentType: "image", extra: {} },
});

/** The hub's side: `count` records in transactions of `run`; returns the bytes and µs per record. */
async function issue(form: FeedSigning, run: number, changes: readonly FeedChange[]): Promise<{ bytes: Buffer[]; usPerRecord: number }> {
  const store = memoryStore();
  const t0 = performance.now();
  for (let i = 0; i < changes.length; i += run) {
    const writer = new FeedWriter(store.heads(), codec, topics, hub, Date.now(), form);
    for (const c of changes.slice(i, i + run)) writer.apply(policy, c);
    store.write(writer.finish());
  }
  return { bytes: store.queued, usPerRecord: ((performance.now() - t0) * 1000) / changes.length };
}

/** The partner's side: decode and walk the records in fetches of 100; µs per record. */
function check(bytes: readonly Buffer[]): { usPerRecord: number; signed: number } {
  let state: { lastSeq: number; lastDigest: Buffer; bootstrapSeq: number; judgedTo: number } = {
    lastSeq: 0,
    lastDigest: GENESIS_DIGEST,
    bootstrapSeq: 0,
    judgedTo: 0,
  };
  let offset = 0;
  let signed = 0;
  const t0 = performance.now();
  while (offset < bytes.length) {
    const batch = bytes.slice(offset, offset + 100).map((value, i) => decode(codec, { offset: String(offset + i), value }));
    const walk = walkChain(sinkCtx, 0, offset, batch, state, new Map());
    if (walk.halt || walk.refused) throw new Error(`the sink refused the feed: ${JSON.stringify(walk.alerts[0])}`);
    signed += batch.filter((d) => d.record?.signature.length).length;
    state = { lastSeq: walk.lastSeq, lastDigest: walk.lastDigest, bootstrapSeq: 0, judgedTo: walk.judgedTo };
    offset = walk.next;
  }
  if (state.lastSeq !== bytes.length) throw new Error(`applied ${state.lastSeq} of ${bytes.length}`);
  return { usPerRecord: ((performance.now() - t0) * 1000) / bytes.length, signed };
}

async function main(): Promise<void> {
  const load = loadavg()[0];
  // Warm-up: JIT and key objects, not measured.
  for (const form of FORMS) check((await issue(form, 3, Array.from({ length: 300 }, change))).bytes);
  const rows: { run: number; form: FeedSigning; signed: number; hubUs: number; sinkUs: number }[] = [];
  for (const run of RUNS) {
    const changes = Array.from({ length: COUNT }, change);
    for (const form of FORMS) {
      const hubSide = await issue(form, run, changes);
      const sinkSide = check(hubSide.bytes);
      rows.push({ run, form, signed: sinkSide.signed, hubUs: hubSide.usPerRecord, sinkUs: sinkSide.usPerRecord });
    }
  }
  console.log(`feed signing, ${COUNT} records per case, load average ${load?.toFixed(1)} before`);
  console.log("records per partition per transaction  form          signed   hub µs/record  sink µs/record");
  for (const r of rows) {
    console.log(
      `${String(r.run).padStart(38)}  ${r.form.padEnd(12)}  ${String(r.signed).padStart(6)}  ${r.hubUs.toFixed(1).padStart(13)}  ${r.sinkUs.toFixed(1).padStart(14)}`,
    );
  }
  mkdirSync("bench-results", { recursive: true });
  writeFileSync(
    "bench-results/feed-signing.json",
    `${JSON.stringify({ count: COUNT, loadBefore: load, loadAfter: loadavg()[0], node: process.version, rows }, null, 2)}\n`,
  );
}

await main();
