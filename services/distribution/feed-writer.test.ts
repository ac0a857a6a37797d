/**
 * FeedWriter (no database: it is given the chain heads and returns what to queue): in both signing modes the records chain the same way, and in the chain-signed form only
 * each partition's last record of the transaction and every CHAIN_SIGNING_INTERVALth seq carry a
 * signature.
 */
import { describe, expect, it } from "vitest";
import { hotlinePolicy, randomHex } from "../../test/support/fixtures.ts";
import { topicNames } from "../shared/topics.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { CHAIN_SIGNING_INTERVAL, GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw, signatureMatches } from "../shared/wire/signing.ts";
import { FeedWriter } from "./feed-writer.ts";
import type { FeedSigning, HubSigner } from "./feed-writer.ts";
import type { FeedChange, PartnerPolicy } from "./policy.ts";
import type { ChainHead } from "./store.ts";

const codec = new AvroCodec();
const type = codec.schema("FeedRecord").type;
const topics = topicNames("");
const keys = generateSigningKeyPair();
const hub: HubSigner = { keyId: "hub:1", privateKey: privateKeyFromPem(keys.privateKeyPem), pseudonymSecret: "feed-writer-test-secret" };
const hubPublic = publicKeyFromRaw(keys.publicKey);

/** Stored chain heads ("partner/partition" -> last seq), each with a digest of its own. */
const storedHeads = (heads: Map<string, number>): ChainHead[] =>
  [...heads].map(([k, seq]) => {
    const [partnerId, partition] = k.split("/");
    return { partnerId: partnerId as string, partition: Number(partition), seq, digest: Buffer.alloc(32, seq % 251) };
  });

const upsert = (): FeedChange => ({
  op: "UPSERT",
  entry: { alg: "md5", value: randomHex(16), recordId: randomHex(8), revision: 1, category: "A", contentType: "image", extra: {} },
});

/** Writes `changes` for each policy in one transaction; returns the records queued, in order. */
async function transaction(signing: FeedSigning, policies: PartnerPolicy[], changes: FeedChange[], heads = new Map<string, number>()) {
  const writer = new FeedWriter(storedHeads(heads), codec, topics, hub, 1_700_000_000_000, signing);
  for (const policy of policies) for (const change of changes) writer.apply(policy, change);
  expect(writer.issued).toEqual([]);
  const written = writer.finish();
  const decoded = (values: Buffer[]) => values.map((v) => codec.decode("FeedRecord", v).value);
  // Kafka gets what is not S3-only, the S3 delta log what is not Kafka-only: the same signed bytes.
  expect(decoded(written.outbox.map((m) => m.value))).toEqual(writer.issued.filter((d) => d.delivery !== "s3").map((d) => d.record));
  expect(decoded(written.log.map((l) => l.body))).toEqual(writer.issued.filter((d) => d.delivery !== "kafka").map((d) => d.record));
  expect(written.outbox.map((m) => [m.topic, m.partition])).toEqual(
    writer.issued.filter((d) => d.delivery !== "s3").map((d) => [topics.feed(d.record.partnerId), d.record.partition]),
  );
  // The heads written back are each extended partition's last record.
  const last = new Map(writer.issued.map((d) => [key(d.record), d.record]));
  expect(written.heads).toEqual(
    [...last.values()].map((r) => ({ partnerId: r.partnerId, partition: r.partition, seq: r.seq, digest: feedRecordDigest(type, r) })),
  );
  return writer.issued.map((d) => d.record);
}

const signed = (r: FeedRecord) => r.signature.length > 0;
const key = (r: FeedRecord) => `${r.partnerId}/${r.partition}`;

/** Checks each partition's seq and prevDigest continue from `start`, and that every signature present verifies. */
function expectChained(records: FeedRecord[], start: (k: string) => { seq: number; digest: Buffer }) {
  const heads = new Map<string, { seq: number; digest: Buffer }>();
  for (const r of records) {
    const head = heads.get(key(r)) ?? start(key(r));
    expect(r.seq).toBe(head.seq + 1);
    expect(r.prevDigest.equals(head.digest)).toBe(true);
    if (signed(r)) expect(signatureMatches("FeedRecord", type, r, hubPublic)).toBe(true);
    heads.set(key(r), { seq: r.seq, digest: feedRecordDigest(type, r) });
  }
}

describe("feed writer signing modes", () => {
  const policies = [hotlinePolicy("p-a"), hotlinePolicy("p-b", { delivery: "both", feedPartitions: 2 })];
  const changes = Array.from({ length: 12 }, upsert);

  it("every-record signs each record; chain signs only each partition's last of the transaction, with the same chain", async () => {
    const every = await transaction("every-record", policies, changes);
    const chain = await transaction("chain", policies, changes);
    expect(every.every(signed)).toBe(true);
    const genesis = () => ({ seq: 0, digest: GENESIS_DIGEST });
    expectChained(every, genesis);
    expectChained(chain, genesis);
    // The same records and digests: only the signature field differs.
    expect(chain.map((r) => feedRecordDigest(type, r).toString("hex"))).toEqual(
      every.map((r) => feedRecordDigest(type, r).toString("hex")),
    );
    const lastSeq = new Map<string, number>();
    for (const r of chain) lastSeq.set(key(r), r.seq);
    for (const r of chain) expect(signed(r), `${key(r)} seq ${r.seq}`).toBe(lastSeq.get(key(r)) === r.seq);
    const partitions = new Set(changes.map((c) => feedPartitionOf(c.entry.alg, c.entry.value, 3)));
    expect(chain.filter((r) => r.partnerId === "p-a" && signed(r))).toHaveLength(partitions.size);
  });

  it("chain signs every seq that is a multiple of the interval, so no unsigned run is longer than interval - 1", async () => {
    const one = hotlinePolicy("p-long", { feedPartitions: 1 });
    const start = CHAIN_SIGNING_INTERVAL - 5;
    const records = await transaction(
      "chain",
      [one],
      Array.from({ length: CHAIN_SIGNING_INTERVAL + 10 }, upsert),
      new Map([["p-long/0", start]]),
    );
    expectChained(records, () => ({ seq: start, digest: Buffer.alloc(32, start % 251) }));
    const last = start + CHAIN_SIGNING_INTERVAL + 10;
    expect(records.filter(signed).map((r) => r.seq)).toEqual([CHAIN_SIGNING_INTERVAL, 2 * CHAIN_SIGNING_INTERVAL, last]);
  });
});
