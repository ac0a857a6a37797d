/**
 * The partner sink's apply (applier.ts) against PostgreSQL alone (no Kafka), through the
 * exactly-once step: a round carries several feed partitions, each judged on its own chain, and
 * written together. One partition halting in a round holds only that partition; duplicates,
 * forged, undecodable and reordered records are dealt with per partition; each partition's stored
 * offset lands where its own walk ended; and a steady round costs the same few statements however
 * many partitions it carries.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { feedRoundStep } from "../../services/partner-sink/applier.ts";
import type { SinkDeps } from "../../services/partner-sink/applier.ts";
import { SINK_MIGRATIONS } from "../../services/partner-sink/main.ts";
import type { TrustedHubKey } from "../../services/partner-sink/verifier.ts";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import type { FetchedMessage, PartitionBatch } from "../../services/shared/exactly-once-step.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { GENESIS_DIGEST, feedRecordDigest } from "../../services/shared/wire/feed-chain.ts";
import type { FeedRecord } from "../../services/shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw, signRecord } from "../../services/shared/wire/signing.ts";
import { randomHex } from "../support/fixtures.ts";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";
import { watchedPool } from "../support/watched-pool.ts";

const PARTNER = "p-round";
const codec = new AvroCodec();
const type = codec.schema("FeedRecord").type;
const hub = generateSigningKeyPair();
const keys: TrustedHubKey[] = [{ keyId: "hub:1", publicKey: publicKeyFromRaw(hub.publicKey), validUntil: null }];
const stranger = generateSigningKeyPair();

let db: TestDatabase;
let deps: SinkDeps;
/** The step as the sink runs it (main.ts): the round's read in the step's first round trip. */
let sink: ReturnType<typeof feedRoundStep>;
beforeAll(async () => {
  db = await freshDatabase("sink-round");
  await migrate(db.pool, [{ namespace: "partner-sink", dir: SINK_MIGRATIONS }]);
  deps = { pool: db.pool, codec, partnerId: PARTNER, consumerGroup: "g", keys: () => keys, logger: createLogger("test", "silent") };
  sink = feedRoundStep(deps);
});
afterAll(async () => {
  await db?.drop();
});

/** One feed partition's chain as the hub extends it: `next` signs the following record. */
function chain(partition: number) {
  let seq = 0;
  let prev: Buffer = GENESIS_DIGEST;
  const sign = (fields: Partial<FeedRecord>, key = hub.privateKeyPem): FeedRecord =>
    signRecord(
      "FeedRecord",
      type,
      {
        partnerId: PARTNER,
        partition,
        seq: seq + 1,
        prevDigest: prev,
        op: "UPSERT",
        alg: "md5",
        value: randomHex(16),
        category: "A",
        contentType: "image",
        revision: 1,
        recordRef: randomHex(16),
        extra: {},
        issuedAt: 1,
        keyId: "hub:1",
        ...fields,
      },
      privateKeyFromPem(key),
    );
  return {
    next(fields: Partial<FeedRecord> = {}): FeedRecord {
      const r = sign(fields);
      seq = r.seq;
      prev = feedRecordDigest(type, r);
      return r;
    },
    /** A record at the next seq under the hub's key id, not signed by the hub; the chain does not move. */
    forged(fields: Partial<FeedRecord> = {}): FeedRecord {
      return sign(fields, stranger.privateKeyPem);
    },
  };
}

const message = (offset: number, value: FeedRecord | Buffer): FetchedMessage => ({
  offset: String(offset),
  key: null,
  value: Buffer.isBuffer(value) ? value : codec.encode("FeedRecord", value),
});
const batch = (partition: number, from: number, values: (FeedRecord | Buffer)[]): PartitionBatch => ({
  topic: "feed",
  partition,
  messages: values.map((v, i) => message(from + i, v)),
});

async function rows<T>(sql: string, values: unknown[] = []): Promise<T[]> {
  return (await db.pool.query(sql, values)).rows as T[];
}
async function storedOffsets(group: string): Promise<Record<number, number>> {
  const r = await rows<{ partition: number; next_offset: number }>(
    "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1",
    [group],
  );
  return Object.fromEntries(r.map((o) => [o.partition, o.next_offset]));
}
async function held(values: string[]): Promise<Record<string, boolean>> {
  const r = await rows<{ value: string; removed: boolean }>("SELECT value, removed FROM partner_hashes WHERE value = ANY($1)", [values]);
  return Object.fromEntries(r.map((h) => [h.value, !h.removed]));
}

describe("the sink applies a round of several feed partitions", () => {
  it("judges each partition on its own chain: one halts and is held, the others go on; duplicates, forgeries and reorders per partition", async () => {
    const [c0, c1, c2] = [chain(0), chain(1), chain(2)];
    // Partition 0: two upserts, then a REMOVE of the first hash in the same batch.
    const a = c0.next();
    const b = c0.next();
    const aRemoved = c0.next({ op: "REMOVE", value: a.value, category: null, contentType: null });
    // Partition 1: seq 1 and 2, then seq 4 (seq 3 never arrives: a gap) and seq 5.
    const [c, d] = [c1.next(), c1.next()];
    c1.next();
    const [gapped, afterGap] = [c1.next(), c1.next()];
    // Partition 2: seq 1, a forged seq 2, the genuine seq 2, bytes that do not decode, seq 3.
    const g = c2.next();
    const forged = c2.forged();
    const [h, i] = [c2.next(), c2.next()];
    const first = await applyExactlyOnce(
      db.pool,
      "round",
      [batch(2, 0, [g, forged, h, Buffer.from("not avro"), i]), batch(0, 0, [a, b, aRemoved]), batch(1, 0, [c, d, gapped, afterGap])],
      sink,
    );
    expect([...first.result]).toEqual([
      [0, { applied: 3, duplicates: 0, refused: 0, refusals: [], halted: false }],
      [1, { applied: 2, duplicates: 0, refused: 1, refusals: ["SEQ_GAP"], halted: true }],
      [2, { applied: 3, duplicates: 0, refused: 2, refusals: ["BAD_SIGNATURE", "BAD_MAGIC"], halted: false }],
    ]);
    expect(first.partitions).toEqual([
      { partition: 0, nextOffset: "3", hold: false },
      { partition: 1, nextOffset: "2", hold: true }, // at the halting record
      { partition: 2, nextOffset: "5", hold: false },
    ]);
    expect(await storedOffsets("round")).toEqual({ 0: 3, 1: 2, 2: 5 });
    expect(await held([a, b, c, d, gapped, afterGap, g, forged, h, i].map((r) => r.value))).toEqual({
      [a.value]: false, // tombstone
      [b.value]: true,
      [c.value]: true,
      [d.value]: true,
      [g.value]: true,
      [h.value]: true,
      [i.value]: true,
    });
    expect(await rows("SELECT partition, seq, kafka_offset AS offset, reason FROM sink_alerts ORDER BY id")).toEqual([
      { partition: 1, seq: 4, offset: 2, reason: "SEQ_GAP" },
      { partition: 2, seq: 2, offset: 1, reason: "BAD_SIGNATURE" },
      { partition: 2, seq: null, offset: 3, reason: "BAD_MAGIC" },
    ]);
    expect(
      await rows(
        "SELECT partition, last_seq, halted_reason IS NOT NULL AS halted, halted_seq, halted_offset FROM feed_state ORDER BY partition",
      ),
    ).toEqual([
      { partition: 0, last_seq: 3, halted: false, halted_seq: null, halted_offset: null },
      { partition: 1, last_seq: 2, halted: true, halted_seq: 4, halted_offset: 2 },
      { partition: 2, last_seq: 3, halted: false, halted_seq: null, halted_offset: null },
    ]);
    const [state1] = await rows<{ last_digest: Buffer; halted_prev_digest: Buffer }>(
      "SELECT last_digest, halted_prev_digest FROM feed_state WHERE partition = 1",
    );
    expect(state1?.last_digest.equals(feedRecordDigest(type, d))).toBe(true);
    expect(state1?.halted_prev_digest.equals(gapped.prevDigest)).toBe(true);
    expect(
      await rows("SELECT partition, array_agg(seq::int ORDER BY seq) AS seqs FROM feed_applied GROUP BY partition ORDER BY partition"),
    ).toEqual([
      { partition: 0, seqs: [1, 2, 3] },
      { partition: 1, seqs: [1, 2] },
      { partition: 2, seqs: [1, 2, 3] },
    ]);

    // The next round: partition 0 redelivered (offsets 1 and 2, below its stored offset) and seq 3
    // again at a new offset (a duplicate) before seq 4; partition 1 still halted; partition 2 a
    // different record at an applied seq (a reorder), then seq 4.
    const j = c0.next();
    const { signature, ...unsigned } = g;
    const reordered = signRecord("FeedRecord", type, { ...unsigned, value: randomHex(16) }, privateKeyFromPem(hub.privateKeyPem));
    expect(reordered.signature.equals(signature)).toBe(false);
    const k = c2.next();
    const second = await applyExactlyOnce(
      db.pool,
      "round",
      [batch(0, 1, [b, aRemoved, aRemoved, j]), batch(1, 2, [gapped, afterGap]), batch(2, 5, [reordered, k])],
      sink,
    );
    expect([...second.result]).toEqual([
      [0, { applied: 1, duplicates: 1, refused: 0, refusals: [], halted: false }],
      [1, { applied: 0, duplicates: 0, refused: 0, refusals: [], halted: true }],
      [2, { applied: 1, duplicates: 0, refused: 1, refusals: ["SEQ_REORDER"], halted: false }],
    ]);
    expect(second.partitions).toEqual([
      { partition: 0, nextOffset: "5", hold: false },
      { partition: 1, nextOffset: null, hold: true },
      { partition: 2, nextOffset: "7", hold: false },
    ]);
    expect(await storedOffsets("round")).toEqual({ 0: 5, 1: 2, 2: 7 });
    expect(await held([j, k, reordered, gapped, afterGap].map((r) => r.value))).toEqual({ [j.value]: true, [k.value]: true });
    expect((await rows<{ reason: string }>("SELECT reason FROM sink_alerts ORDER BY id")).map((r) => r.reason)).toEqual([
      "SEQ_GAP",
      "BAD_SIGNATURE",
      "BAD_MAGIC",
      "SEQ_REORDER",
    ]);
    expect(await rows("SELECT partition, last_seq FROM feed_state ORDER BY partition")).toEqual([
      { partition: 0, last_seq: 4 },
      { partition: 1, last_seq: 2 },
      { partition: 2, last_seq: 4 },
    ]);
  });

  it("takes the chain-signed form: an unsigned tail waits at its stored offset, a tampered run halts, the every-record form beside it", async () => {
    const [c8, c9, c10] = [chain(8), chain(9), chain(10)];
    const bare = (r: FeedRecord): FeedRecord => ({ ...r, signature: Buffer.alloc(0) });
    const every = [c8.next(), c8.next()];
    const run = [bare(c9.next()), bare(c9.next()), c9.next()];
    // Partition 10: seq 1 signed (an earlier transaction), then seq 2 and 3 whose signed seq 4 is not there yet.
    const [t1, t2, t3, t4] = [c10.next(), c10.next(), c10.next(), c10.next()];
    const tail = [t1, bare(t2), Buffer.from("not avro"), bare(t3)];
    const first = await applyExactlyOnce(db.pool, "chain-form", [batch(8, 0, every), batch(9, 0, run), batch(10, 0, tail)], sink);
    expect([...first.result]).toEqual([
      [8, { applied: 2, duplicates: 0, refused: 0, refusals: [], halted: false }],
      [9, { applied: 3, duplicates: 0, refused: 0, refusals: [], halted: false }],
      [10, { applied: 1, duplicates: 0, refused: 1, refusals: ["BAD_MAGIC"], halted: false }],
    ]);
    expect(first.partitions).toEqual([
      { partition: 8, nextOffset: "2", hold: false },
      { partition: 9, nextOffset: "3", hold: false },
      { partition: 10, nextOffset: "1", hold: false }, // at the first unsigned record still waiting
    ]);
    expect(await storedOffsets("chain-form")).toEqual({ 8: 2, 9: 3, 10: 1 });
    expect(await held([...every, ...run, t1, t2, t3].map((r) => r.value))).toEqual(
      Object.fromEntries([...every, ...run, t1].map((r) => [r.value, true])),
    );

    // Partition 10 read again from its stored offset with seq 4; partition 9's next run has a tampered seq 5.
    const [u4, u5, s6] = [bare(c9.next()), bare(c9.next()), c9.next()];
    const tampered = { ...u5, category: "C" };
    const second = await applyExactlyOnce(
      db.pool,
      "chain-form",
      [batch(9, 3, [u4, tampered, s6]), batch(10, 1, [bare(t2), Buffer.from("not avro"), bare(t3), t4])],
      sink,
    );
    expect([...second.result]).toEqual([
      [9, { applied: 0, duplicates: 0, refused: 3, refusals: ["BAD_SIGNATURE", "BAD_SIGNATURE", "SEQ_GAP"], halted: true }],
      [10, { applied: 3, duplicates: 0, refused: 0, refusals: [], halted: false }], // the junk was alerted the first time
    ]);
    expect(second.partitions).toEqual([
      { partition: 9, nextOffset: "5", hold: true },
      { partition: 10, nextOffset: "5", hold: false },
    ]);
    expect(await held([t2, t3, t4, u4, u5].map((r) => r.value))).toEqual({ [t2.value]: true, [t3.value]: true, [t4.value]: true });
    expect(
      await rows("SELECT partition, seq, kafka_offset AS offset, reason FROM sink_alerts WHERE partition IN (8, 9, 10) ORDER BY id"),
    ).toEqual([
      { partition: 10, seq: null, offset: 2, reason: "BAD_MAGIC" },
      { partition: 9, seq: 4, offset: 3, reason: "BAD_SIGNATURE" },
      { partition: 9, seq: 5, offset: 4, reason: "BAD_SIGNATURE" },
      { partition: 9, seq: 6, offset: 5, reason: "SEQ_GAP" },
    ]);
    expect(
      await rows("SELECT partition, last_seq, halted_seq, judged_to FROM feed_state WHERE partition IN (8, 9, 10) ORDER BY partition"),
    ).toEqual([
      { partition: 8, last_seq: 2, halted_seq: null, judged_to: 2 },
      { partition: 9, last_seq: 3, halted_seq: 6, judged_to: 5 },
      { partition: 10, last_seq: 4, halted_seq: null, judged_to: 5 },
    ]);
  });

  it("writes a hash that came on two partitions of one round once, the higher partition's record winning", async () => {
    const [c6, c7] = [chain(6), chain(7)];
    const [x, y] = [randomHex(16), randomHex(16)];
    const lower = [c6.next({ value: x, category: "B" }), c6.next({ op: "REMOVE", value: y, category: null, contentType: null })];
    const higher = [c7.next({ value: x, category: "C" }), c7.next({ value: y, category: "C" })];
    const outcome = await applyExactlyOnce(db.pool, "overlap", [batch(7, 0, higher), batch(6, 0, lower)], sink);
    expect([...outcome.result.values()].map((r) => r.applied)).toEqual([2, 2]);
    expect(
      await rows("SELECT value, category, removed FROM partner_hashes WHERE value = ANY($1) ORDER BY value = $2", [[x, y], y]),
    ).toEqual([
      { value: x, category: "C", removed: false },
      { value: y, category: "C", removed: false },
    ]);
  });

  it("applies a steady round of three partitions in three round trips, however many partitions", async () => {
    // Partitions of their own (feed_state is keyed by partition), so the test above does not matter.
    const chains = new Map([3, 4, 5].map((p) => [p, chain(p)]));
    const round = (from: number) =>
      [...chains].map(([p, c]) => {
        const kept = c.next();
        return batch(p, from, [kept, c.next(), c.next({ op: "REMOVE", value: kept.value, category: null, contentType: null })]);
      });
    // Every statement the round sends on its connection, by its first words.
    const statements: string[] = [];
    const counted = watchedPool(db.pool, (text) => statements.push(text.replace(/\s+/g, " ").trim().split(" ").slice(0, 3).join(" ")));
    // The first round creates the partitions' offset and feed_state rows and reads both again (five statements more).
    await applyExactlyOnce(counted, "steady", round(0), sink);
    expect(statements.length).toBe(8);
    statements.length = 0;
    const steady = await applyExactlyOnce(counted, "steady", round(3), sink);
    expect([...steady.result.values()].map((r) => r.applied)).toEqual([3, 3, 3]);
    expect(statements).toEqual([
      "BEGIN; SELECT partition,", // the offset lock, then feed_state FOR UPDATE with the digests already applied at the round's seqs
      "WITH w0 AS", // chain heads, upserts, tombstones and feed_applied in one statement
      "UPDATE consumer_offsets o", // the next offsets, then COMMIT
    ]);
    expect(await storedOffsets("steady")).toEqual({ 3: 6, 4: 6, 5: 6 });
  });
});
