/**
 * The chain-signed feed form end to end on the real stack (DISTRIBUTION_FEED_SIGNING=chain): the
 * hub signs only each partition's last record of a transaction, partner sinks apply the feed as
 * they do a signed one (reading an unsigned tail again until its signed record comes), an unsigned
 * record injected into a partner's topic is refused once the hub's chain passes it, and a new
 * partner bootstraps from a signed S3 snapshot whose chain heads are signed records.
 */
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerPartner } from "../../services/admin/registry.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { loadPolicies, setPolicy } from "../../services/distribution/policy-store.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { feedPartitionOf } from "../../services/shared/wire/feed-chain.ts";
import type { CanonicalRecord, FeedRecord, Hash, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../support/agencies.ts";
import { hotlinePolicy, randomHex, sampleFeedRecord } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const codec = new AvroCodec();
const PARTNER = "chain-hotline";
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
let policies: PartnerPolicy[];

beforeAll(async () => {
  kafka = kafkaAs("test-chain-feed");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({ agencies: [{ id: "force-a" }, { id: "force-b" }], policies: [hotlinePolicy(PARTNER)], feedSigning: "chain" });
  policies = await loadPolicies(p.hubDb.pool);
});

afterAll(async () => {
  await p?.stop();
  await producer?.disconnect();
});

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });

function submissions(n: number, hashes: () => Hash[] = () => [md5(), sha1()]): Submission[] {
  const [a, b] = [p.agencies["force-a"], p.agencies["force-b"]];
  if (!a || !b) throw new Error("agencies missing");
  return Array.from({ length: n }, (_, i) =>
    signedSubmission(i % 2 ? a : b, { hashes: hashes(), grade: { uk: "A", ics: "A1", vics: null } }),
  );
}

async function publish(subs: Submission[]): Promise<void> {
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `${s.hashes[0]?.alg}:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
}

/** Waits until the partners' databases equal what their policies imply over the canonical records. */
async function reconciled(partners: string[]): Promise<void> {
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, partners), 60_000, 300);
  const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records");
  const records: CanonicalRecord[] = rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
  for (const policy of policies.filter((x) => partners.includes(x.partnerId))) {
    const sink = p.sinks[policy.partnerId];
    if (!sink) throw new Error(`no sink for ${policy.partnerId}`);
    const report = reconcile(expectedHoldings(policy, records), await partnerHoldings(sink.db.pool));
    expect(report.ok, `${policy.partnerId}: ${report.missing.length} missing, ${report.unexpected.length} unexpected`).toBe(true);
  }
}

/** Every record on a partner's feed topic, in offset order per partition. */
async function feedRecords(partnerId: string): Promise<FeedRecord[]> {
  const { rows } = await p.hubDb.pool.query<{ n: string }>(
    "SELECT coalesce(sum(last_seq), 0)::text AS n FROM feed_partitions WHERE partner_id = $1",
    [partnerId],
  );
  const messages = await readTopic(kafka, p.names.feed(partnerId), (ms) => ms.length >= Number(rows[0]?.n), 20_000);
  return messages.map((m) => codec.decode("FeedRecord", m.value).value);
}

async function alerts(partnerId: string): Promise<{ seq: number; reason: string }[]> {
  const sink = p.sinks[partnerId];
  if (!sink) throw new Error(`no sink for ${partnerId}`);
  return (await sink.db.pool.query<{ seq: number; reason: string }>("SELECT seq, reason FROM sink_alerts ORDER BY id")).rows;
}

describe("the chain-signed feed form end to end", () => {
  it("reaches the partner database as a signed feed does, with records left unsigned", async () => {
    await publish(submissions(40));
    await reconciled([PARTNER]);
    const records = await feedRecords(PARTNER);
    const unsigned = records.filter((r) => r.signature.length === 0).length;
    expect(unsigned).toBeGreaterThan(0);
    expect(records.length - unsigned).toBeGreaterThan(0);
    expect(await alerts(PARTNER)).toEqual([]);
  });

  it("refuses an unsigned record injected into the feed once the hub's next signed record passes it", async () => {
    const sink = p.sinks[PARTNER];
    if (!sink) throw new Error("no sink");
    const { rows } = await sink.db.pool.query<{ partition: number; last_seq: number; last_digest: Buffer }>(
      "SELECT partition, last_seq, last_digest FROM feed_state ORDER BY partition LIMIT 1",
    );
    const head = rows[0];
    if (!head) throw new Error("no feed state");
    const forged: FeedRecord = {
      ...sampleFeedRecord(),
      partnerId: PARTNER,
      partition: head.partition,
      seq: head.last_seq + 1,
      prevDigest: head.last_digest,
      category: "A",
      keyId: p.hubKey.keyId,
      signature: Buffer.alloc(0),
    };
    await producer.send({
      topic: p.names.feed(PARTNER),
      acks: -1,
      messages: [{ partition: head.partition, key: "x", value: codec.encode("FeedRecord", forged) }],
    });
    // Nothing authenticates it yet: it waits, and the partition's stored offset stays at it.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await alerts(PARTNER)).toEqual([]);
    expect((await partnerHoldings(sink.db.pool)).has(`md5:${forged.value}`)).toBe(false);
    // The hub's next records on that partition: an md5 that lands there.
    const onPartition = (): Hash[] => {
      for (;;) {
        const h = md5();
        if (feedPartitionOf(h.alg, h.value, 3) === head.partition) return [h];
      }
    };
    await publish(submissions(4, onPartition));
    await reconciled([PARTNER]);
    expect(await alerts(PARTNER)).toEqual([{ seq: head.last_seq + 1, reason: "BAD_SIGNATURE" }]);
    expect((await partnerHoldings(sink.db.pool)).has(`md5:${forged.value}`)).toBe(false);
    const halted = await sink.db.pool.query("SELECT partition FROM feed_state WHERE halted_reason IS NOT NULL");
    expect(halted.rows).toEqual([]);
  });

  it("bootstraps a new partner from a signed snapshot whose chain heads are signed records, then tails the chain-signed feed", async () => {
    await registerPartner(p.hubDb.pool, { partnerId: "chain-newcomer", name: "Synthetic chain newcomer" });
    await setPolicy(p.hubDb.pool, hotlinePolicy("chain-newcomer", { algorithms: ["md5"], delivery: "both", feedPartitions: 2 }));
    await p.distribution.refreshPolicies();
    policies = await loadPolicies(p.hubDb.pool);
    await waitFor(
      "feed outbox drained",
      async () => Number((await p.hubDb.pool.query("SELECT count(*) AS n FROM feed_outbox")).rows[0]?.n) === 0,
    );
    await p.distribution.exportNow({ snapshots: true });
    const records = await feedRecords("chain-newcomer");
    const { rows: heads } = await p.hubDb.pool.query<{ partition: number; last_seq: number; last_digest: Buffer }>(
      "SELECT partition, last_seq, last_digest FROM feed_partitions WHERE partner_id = 'chain-newcomer'",
    );
    expect(heads.length).toBeGreaterThan(0);
    for (const h of heads) {
      const last = records.find((r) => r.partition === h.partition && r.seq === h.last_seq);
      expect(last?.signature).toHaveLength(64);
    }
    expect(records.some((r) => r.signature.length === 0)).toBe(true);
    // The sink checks the manifest's signature and the object's digest before loading anything.
    await p.startSink("chain-newcomer");
    const newcomer = p.sinks["chain-newcomer"]?.db.pool;
    if (!newcomer) throw new Error("no newcomer sink");
    const { rows: boot } = await newcomer.query<{ partition: number; bootstrap_seq: number }>(
      "SELECT partition, bootstrap_seq FROM feed_state ORDER BY partition",
    );
    expect(boot).toEqual(
      heads.map((h) => ({ partition: h.partition, bootstrap_seq: h.last_seq })).sort((a, b) => a.partition - b.partition),
    );
    expect(Number((await newcomer.query("SELECT count(*) AS n FROM partner_hashes")).rows[0]?.n)).toBeGreaterThan(0);
    await publish(submissions(20));
    await reconciled([PARTNER, "chain-newcomer"]);
    expect(await alerts("chain-newcomer")).toEqual([]);
  });
});
