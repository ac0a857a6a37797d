/**
 * Dedup against the real stack: verification and rejection reasons, joining, merging, consensus,
 * retraction, near-duplicate linking, and exactly-once under kill -9 of a real dedup process.
 */
import { servicePrincipal } from "../../services/shared/kafka-access.ts";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { startDedup } from "../../services/dedup/main.ts";
import type { RunningDedup } from "../../services/dedup/main.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import type { CanonicalRecord, Hash, Rejection, Submission } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { addTestKey, registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { startServiceProcess, waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;

beforeAll(async () => {
  kafka = kafkaAs("test-dedup");
  producer = createDurableProducer(kafka);
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
});

const md5 = (value = randomHex(16)): Hash => ({ alg: "md5", value, quality: null });
const sha1 = (value = randomHex(20)): Hash => ({ alg: "sha1", value, quality: null });

async function publish(topic: string, values: (Submission | Buffer)[]): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: values.map((v) => ({
      key: Buffer.isBuffer(v) ? "garbage" : `${v.hashes[0]?.alg}:${v.hashes[0]?.value}`,
      value: Buffer.isBuffer(v) ? v : codec.encode("Submission", v),
    })),
  });
}

interface Hub {
  db: TestDatabase;
  names: TopicNames;
  namespace: string;
  forceA: AgencySigner;
  forceB: AgencySigner;
  nca: AgencySigner;
}

async function freshHub(): Promise<Hub> {
  const db = await freshDatabase("dedup");
  const { names, namespace } = await freshTopics();
  const forceA = await registerTestAgency(db.pool, "force-a");
  const forceB = await registerTestAgency(db.pool, "force-b");
  const nca = await registerTestAgency(db.pool, "nca", { kind: "nca", authority: true });
  return { db, names, namespace, forceA, forceB, nca };
}

function dedupConfig(hub: Hub) {
  return {
    KAFKA_BROKERS: stackEnv().brokers,
    ...principalEnv(servicePrincipal("dedup")),
    DATABASE_URL: hub.db.url,
    TOPIC_NAMESPACE: hub.namespace,
    LOG_LEVEL: "warn" as const,
    CONSUMER_MAX_BATCH_BYTES: 1_048_576,
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
    DEDUP_GRADING_AUTHORITIES: "",
    DEDUP_CONFIRMATIONS: 2,
    DEDUP_PHOTODNA_THRESHOLD: 1800,
    DEDUP_MAX_SUBMISSION_AGE_DAYS: 30,
  };
}

/** Latest canonical record per recordId read from the compacted topic. */
async function canonicalLatest(
  names: TopicNames,
  done: (latest: Map<string, CanonicalRecord>) => boolean,
): Promise<Map<string, CanonicalRecord>> {
  const latest = new Map<string, CanonicalRecord>();
  await readTopic(
    kafka,
    names.canonical,
    (ms) => {
      latest.clear();
      for (const m of ms) {
        const r = codec.decode("CanonicalRecord", m.value).value;
        const prior = latest.get(r.recordId);
        if (!prior || prior.revision < r.revision) latest.set(r.recordId, r);
      }
      return done(latest);
    },
    60_000,
  );
  return latest;
}

const byHash = (latest: Map<string, CanonicalRecord>, value: string) =>
  [...latest.values()].find((r) => !r.mergedInto && r.hashes.some((h) => h.value === value));

describe("dedup service", () => {
  let hub: Hub;
  let dedup: RunningDedup;

  beforeAll(async () => {
    hub = await freshHub();
    dedup = await startDedup(dedupConfig(hub));
  });
  afterAll(async () => {
    await dedup?.stop();
    await hub?.db.drop();
  });

  it("joins, merges, grades by consensus and authority, retracts and links near duplicates", async () => {
    const { forceA, forceB, nca, names } = hub;
    const [x, y, z] = [md5(), md5(), sha1()];
    const pdq = randomHex(32);
    const nearPdq = pdq.slice(0, 60) + (parseInt(pdq.slice(60), 16) ^ 0x7).toString(16).padStart(4, "0"); // 3 bits away
    const t = Date.now();
    await publish(names.submitted, [
      signedSubmission(forceA, { hashes: [x], grade: { uk: "B", ics: "B1", vics: null }, submittedAt: t }),
      signedSubmission(forceB, { hashes: [x, z], grade: { uk: "B", ics: "B1", vics: null }, submittedAt: t }),
      signedSubmission(forceA, { hashes: [y], grade: { uk: "C", ics: null, vics: null }, submittedAt: t }),
      signedSubmission(forceB, { hashes: [md5(), { alg: "pdq", value: pdq, quality: 90 }], submittedAt: t }),
      signedSubmission(forceA, { hashes: [md5(), { alg: "pdq", value: nearPdq, quality: 80 }], submittedAt: t }),
    ]);
    let latest = await canonicalLatest(
      names,
      (l) =>
        !!byHash(l, x.value) &&
        !!byHash(l, y.value) &&
        !!byHash(l, nearPdq) &&
        !!byHash(l, pdq) &&
        (byHash(l, pdq)?.nearDuplicates.length ?? 0) > 0 &&
        (byHash(l, nearPdq)?.nearDuplicates.length ?? 0) > 0,
    );
    const joined = byHash(latest, x.value);
    expect(joined?.hashes.map((h) => h.value).sort()).toEqual([x.value, z.value].sort());
    expect(joined).toMatchObject({ gradingStatus: "confirmed", confirmations: 2, classification: { uk: "B", ics: "B1" } });
    expect(byHash(latest, y.value)?.gradingStatus).toBe("indicative");
    const p1 = byHash(latest, pdq);
    const p2 = byHash(latest, nearPdq);
    expect(p1?.recordId).not.toBe(p2?.recordId);
    expect(p1?.nearDuplicates).toEqual([p2?.recordId]);
    expect(p2?.nearDuplicates).toEqual([p1?.recordId]);

    // The NCA (authority) grades y as A and bridges it with x: merge, authority wins.
    await publish(names.submitted, [
      signedSubmission(nca, { hashes: [x, y], grade: { uk: "A", ics: "A1", vics: null }, submittedAt: t + 1 }),
    ]);
    latest = await canonicalLatest(names, (l) => {
      const merged = [...l.values()].find((r) => r.mergedInto !== null);
      return !!merged && byHash(l, x.value)?.recordId === merged.mergedInto && byHash(l, y.value)?.recordId === merged.mergedInto;
    });
    const absorbed = [...latest.values()].find((r) => r.mergedInto);
    const survivor = byHash(latest, x.value);
    expect(absorbed).toMatchObject({ deleted: true, hashes: [] });
    expect(absorbed?.mergedInto).toBe(survivor?.recordId);
    expect(survivor).toMatchObject({ classification: { uk: "A", ics: "A1" }, gradingStatus: "confirmed", baseline: true, deleted: false });
    expect(survivor?.provenance.agencies).toEqual(["force-a", "force-b", "nca"]);

    // Retraction by the authority withdraws the record.
    await publish(names.submitted, [signedSubmission(nca, { op: "RETRACT", hashes: [y], submittedAt: t + 2 })]);
    latest = await canonicalLatest(names, (l) => byHash(l, x.value)?.deleted === true);
    expect(byHash(latest, x.value)?.revision).toBeGreaterThan(survivor?.revision ?? 0);
  });

  it("rejects bad signatures, unknown, revoked and expired keys, garbage and replays, with reasons and original bytes", async () => {
    const { forceA, names, db } = hub;
    const revoked = await addTestKey(db.pool, "force-a");
    await new PgKeyRegistry(db.pool).revokeKey(revoked.keyId, "test", new Date(Date.now() - 1000));
    const expired = await addTestKey(db.pool, "force-a", {
      validFrom: new Date(Date.now() - 7_200_000),
      validUntil: new Date(Date.now() - 3_600_000),
    });
    const good = signedSubmission(forceA);
    const tampered = { ...signedSubmission(forceA), grade: { uk: "A" as const, ics: null, vics: null } };
    const unknown = signedSubmission({ ...forceA, keyId: "force-a:ffffffffffffffff" });
    const garbage = Buffer.from(`not avro ${randomHex(4)}`);
    const old = signedSubmission(forceA, { submittedAt: Date.now() - 40 * 86_400_000 });
    await publish(names.submitted, [good, tampered, unknown, signedSubmission(revoked), signedSubmission(expired), garbage, old, good]);

    const wanted: Record<string, string> = {
      [tampered.submissionId]: "BAD_SIGNATURE",
      [unknown.submissionId]: "UNKNOWN_KEY",
      [old.submissionId]: "STALE_SUBMISSION",
      [good.submissionId]: "DUPLICATE_SUBMISSION",
    };
    const decode = (ms: { value: Buffer }[]) => ms.map((m) => codec.decode("Rejection", m.value).value);
    const messages = await readTopic(kafka, names.rejected, (ms) => {
      const rs = decode(ms);
      return (
        Object.keys(wanted).every((id) => rs.some((r) => r.submissionId === id)) &&
        rs.some((r) => r.reason === "BAD_MAGIC") &&
        rs.some((r) => r.reason === "KEY_REVOKED") &&
        rs.some((r) => r.reason === "KEY_EXPIRED")
      );
    });
    const rejections: Rejection[] = decode(messages);
    for (const [id, reason] of Object.entries(wanted)) expect(rejections.find((r) => r.submissionId === id)?.reason).toBe(reason);
    const bad = rejections.find((r) => r.reason === "BAD_MAGIC");
    expect(bad?.originalBytes).toEqual(garbage);
    expect(bad?.sourceTopic).toBe(names.submitted);
    expect(bad?.sourceOffset).toMatch(/^\d+$/);
    const tamperedRejection = rejections.find((r) => r.submissionId === tampered.submissionId);
    expect(codec.decode("Submission", tamperedRejection?.originalBytes ?? Buffer.alloc(0)).value).toEqual(tampered);
  });
});

describe("exactly once under kill -9", () => {
  it("loses and duplicates nothing when the dedup process is killed mid-stream again and again", async () => {
    const hub = await freshHub();
    try {
      const total = 3000;
      const subs = Array.from({ length: total }, (_, i) => signedSubmission(i % 2 ? hub.forceA : hub.forceB, { hashes: [md5(), sha1()] }));
      // Every tenth submission repeats an earlier image from the other force: joins, not new records.
      for (let i = 10; i < total; i += 10) {
        const earlier = subs[i - 5] as Submission;
        subs[i] = signedSubmission(earlier.agencyId === "force-a" ? hub.forceB : hub.forceA, { hashes: [earlier.hashes[0] as Hash] });
      }
      const env = {
        KAFKA_BROKERS: stackEnv().brokers.join(","),
        DATABASE_URL: hub.db.url,
        TOPIC_NAMESPACE: hub.namespace,
        LOG_LEVEL: "warn",
        // Small fetches make many batches, so kills land between and inside transactions.
        CONSUMER_MAX_BATCH_BYTES: "65536",
        CONSUMER_SESSION_TIMEOUT_MS: "6000",
      };
      for (let i = 0; i < total; i += 500) await publish(hub.names.submitted, subs.slice(i, i + 500));

      const applied = async () =>
        Number(
          (await hub.db.pool.query("SELECT count(*) AS n FROM applied_submissions").catch(() => ({ rows: [{ n: 0 }] }))).rows[0]?.n ?? 0,
        );
      let kills = 0;
      let last = -1;
      while (kills < 3) {
        const proc = startServiceProcess("dedup", env);
        // Let it get some way in, then kill it without warning.
        const target = Math.min(total, Math.max(last, 0) + 400);
        await waitFor(`dedup progress past ${target}`, async () => (await applied()) >= target || (await applied()) === total, 90_000, 20);
        await proc.kill("SIGKILL");
        kills++;
        const now = await applied();
        expect(now).toBeGreaterThan(last);
        last = now;
        if (now === total) break;
      }
      const finalProc = startServiceProcess("dedup", env);
      try {
        await waitFor("all submissions applied", async () => (await applied()) === total, 120_000);
        await waitFor(
          "outbox drained",
          async () => Number((await hub.db.pool.query("SELECT count(*) AS n FROM outbox")).rows[0]?.n) === 0,
          60_000,
        );
      } finally {
        await finalProc.kill("SIGTERM");
      }

      const db = hub.db.pool;
      const records = Number((await db.query("SELECT count(*) AS n FROM canonical_records WHERE NOT deleted")).rows[0]?.n);
      expect(records).toBe(total - Math.floor((total - 1) / 10));
      const sightings = Number((await db.query("SELECT count(*) AS n FROM sightings")).rows[0]?.n);
      expect(sightings).toBe(total);
      const rejected = await readTopic(kafka, hub.names.rejected, () => true, 5_000).catch(() => []);
      expect(rejected).toHaveLength(0);

      // The canonical topic holds every record at its stored revision; re-sent duplicates are byte-identical.
      const { rows } = await db.query<{ record_id: string; revision: number }>("SELECT record_id, revision FROM canonical_records");
      const expected = new Map(rows.map((r) => [r.record_id, r.revision]));
      const seen = new Map<string, Buffer>();
      let processed = 0;
      await readTopic(
        kafka,
        hub.names.canonical,
        (ms) => {
          for (const m of ms.slice(processed)) {
            const r = codec.decode("CanonicalRecord", m.value).value;
            const k = `${r.recordId}@${r.revision}`;
            const prior = seen.get(k);
            if (prior) expect(prior.equals(m.value)).toBe(true);
            else seen.set(k, m.value);
          }
          processed = ms.length;
          return [...expected].every(([id, rev]) => seen.has(`${id}@${rev}`));
        },
        60_000,
      );
      expect(kills).toBeGreaterThanOrEqual(2);
    } finally {
      await hub.db.drop();
    }
  }, 400_000);
});
