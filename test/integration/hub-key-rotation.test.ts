/**
 * Hub key rotation end to end: partners trust the old and the new hub key during the overlap,
 * distribution restarts signing with the new key, every record on both sides of the switch is
 * applied without an alert, and the old key can then be dropped. A partner that never added the
 * new key refuses the new records (UNKNOWN_KEY) instead of applying them.
 */
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { createHubKey, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;

beforeAll(async () => {
  kafka = kafkaAs("test-hub-rotation");
  producer = createDurableProducer(kafka);
  await producer.connect();
  const policy = {
    categories: ["A", "B", "C"] as const,
    minGradingStatus: "indicative" as const,
    algorithms: ["md5"] as const,
    scheme: "uk" as const,
    extraFields: [],
    delivery: "kafka" as const,
    feedPartitions: 2,
  };
  p = await startPipeline({
    agencies: [{ id: "force-a" }],
    policies: [
      { partnerId: "hotline-uk", ...policy, categories: [...policy.categories], algorithms: [...policy.algorithms] },
      { partnerId: "industry-x", ...policy, categories: [...policy.categories], algorithms: [...policy.algorithms] },
    ],
  });
}, 120_000);

afterAll(async () => {
  await producer?.disconnect();
  await p?.stop();
});

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });

async function submitBatch(n: number): Promise<string[]> {
  const force = p.agencies["force-a"];
  if (!force) throw new Error("no force-a");
  const subs: Submission[] = Array.from({ length: n }, () =>
    signedSubmission(force, { hashes: [md5()], grade: { uk: "B", ics: null, vics: null } }),
  );
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: s.hashes[0]?.value ?? null, value: codec.encode("Submission", s) })),
  });
  return subs.map((s) => s.hashes[0]?.value as string);
}

async function holds(partnerId: string, values: string[]): Promise<number> {
  const db = p.sinks[partnerId]?.db;
  if (!db) throw new Error(`no sink for ${partnerId}`);
  const { rows } = await db.pool.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM partner_hashes WHERE alg = 'md5' AND NOT removed AND value = ANY($1)",
    [values],
  );
  return Number(rows[0]?.n);
}

async function alerts(partnerId: string): Promise<string[]> {
  const db = p.sinks[partnerId]?.db;
  if (!db) throw new Error(`no sink for ${partnerId}`);
  return (await db.pool.query<{ reason: string }>("SELECT reason FROM sink_alerts ORDER BY id")).rows.map((r) => r.reason);
}

describe("hub key rotation", () => {
  it("partners verify both keys during the overlap, then only the new one", async () => {
    const oldKey = p.hubKey;
    const newKey = await createHubKey(p.hubDb); // registered to the hub, valid from now
    // Overlap begins: hotline-uk adds the new key beside the old; industry-x does not.
    await p.startSink("hotline-uk", [oldKey, newKey]);

    const before = await submitBatch(5);
    await waitFor(
      "old-key records applied",
      async () => (await holds("hotline-uk", before)) === 5 && (await holds("industry-x", before)) === 5,
      60_000,
    );

    await p.rotateHubKey(newKey);
    const after = await submitBatch(5);
    await waitFor("new-key records applied by the partner that trusts both", async () => (await holds("hotline-uk", after)) === 5, 60_000);
    expect(await alerts("hotline-uk")).toEqual([]);

    // The feed on both sides of the switch: old-key records first, then new-key ones.
    const feed = await readTopic(kafka, p.names.feed("hotline-uk"), (ms) => ms.length >= 10);
    const keyIds = feed.map((m) => codec.decode("FeedRecord", m.value).value.keyId);
    expect(new Set(keyIds)).toEqual(new Set([oldKey.keyId, newKey.keyId]));

    // The partner that never added the new key refuses what it signs: nothing applied, alerts raised.
    await waitFor("industry-x refuses the new key", async () => (await alerts("industry-x")).includes("UNKNOWN_KEY"), 60_000);
    expect(await holds("industry-x", after)).toBe(0);

    // Overlap over: hotline-uk drops the old key and goes on applying.
    await p.startSink("hotline-uk", [newKey]);
    const later = await submitBatch(3);
    await waitFor("records applied after the old key was dropped", async () => (await holds("hotline-uk", later)) === 3, 60_000);
    expect(await alerts("hotline-uk")).toEqual([]);
    expect(await holds("hotline-uk", [...before, ...after])).toBe(10);
  }, 180_000);
});
