/**
 * dedup's apply (processor.ts) against PostgreSQL alone (no Kafka), through the exactly-once step
 * as the consumer runs it: a round costs one load and one write statement however many messages it
 * carries; a round of refusals writes only them; the write's upserts and deletes leave exactly the
 * rows a merge implies, with degenerate values recounted; and two instances' near-duplicate
 * indexes stay in step while each skips reading back the perceptual rows it inserted itself,
 * including those of a round that rolled back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEDUP_MIGRATIONS } from "../../services/dedup/main.ts";
import { IndexedNearDuplicateLinker } from "../../services/dedup/near-duplicate-linker.ts";
import { applyBatch, verifyBatch } from "../../services/dedup/processor.ts";
import type { BatchResult, DedupDeps } from "../../services/dedup/processor.ts";
import { DEDUP_APPLY_LOCK } from "../../services/shared/advisory-locks.ts";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { migrate } from "../../services/shared/postgres.ts";
import type { PoolClient } from "../../services/shared/postgres.ts";
import { topicNames } from "../../services/shared/topics.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { CanonicalRecord, Hash, Rejection, Submission } from "../../services/shared/wire/records.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
const topics = topicNames("round");
const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });
const pdq = (value = randomHex(32)): Hash => ({ alg: "pdq", value, quality: 90 });
/** A PDQ value `bits` bits away from `value`: a near duplicate. */
const near = (value: string, bits: number): Hash => {
  const b = Buffer.from(value, "hex");
  for (let i = 0; i < bits; i++) b[i] = (b[i] as number) ^ 1;
  return pdq(b.toString("hex"));
};

let db: TestDatabase;
let forceA: AgencySigner;
let forceB: AgencySigner;
let forceC: AgencySigner;
/** Two dedup instances on one database: each has its own near-duplicate indexes. */
const instances: { deps: DedupDeps; linker: IndexedNearDuplicateLinker }[] = [];
let failNextRound = false;
const offsets = new Map<number, number>();

beforeAll(async () => {
  db = await freshDatabase("dedup-round");
  await migrate(db.pool, [{ namespace: "dedup", dir: DEDUP_MIGRATIONS }]);
  forceA = await registerTestAgency(db.pool, "force-a");
  forceB = await registerTestAgency(db.pool, "force-b");
  forceC = await registerTestAgency(db.pool, "force-c");
  for (let i = 0; i < 2; i++) {
    const linker = new IndexedNearDuplicateLinker({ photodnaThreshold: 1800 });
    const client = await db.pool.connect();
    await linker.catchUp(client).finally(() => client.release());
    const deps: DedupDeps = {
      pool: db.pool,
      codec,
      keys: new PgKeyRegistry(db.pool),
      policy: { authorities: new Set(), confirmations: 2 },
      topics,
      consumerGroup: "dedup-round",
      nearDuplicates: linker,
      logger: createLogger("test", "silent"),
      maxSubmissionAgeMs: 86_400_000,
      degeneratePerceptualRecords: 3,
      beforeCommit: async () => {
        if (!failNextRound) return;
        failNextRound = false;
        throw new Error("injected failure before COMMIT");
      },
    };
    instances.push({ deps, linker });
  }
});
afterAll(async () => {
  await db?.drop();
});

interface Statement {
  /** The statement's name, or its first words. */
  readonly what: string;
  readonly rows: unknown[];
}

interface RoundOutcome {
  readonly result: BatchResult;
  readonly statements: Statement[];
  /** The outbox rows the round queued, decoded, in relay order. */
  readonly records: CanonicalRecord[];
  readonly rejections: Rejection[];
}

/** The tx with every statement it sends recorded (name or first words, and the rows it returned). */
function recording(tx: PoolClient, statements: Statement[]): PoolClient {
  return new Proxy(tx, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop !== "query" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const q = args[0] as string | { name?: string; text: string };
        const text = typeof q === "string" ? q : q.text;
        const what = typeof q === "object" && q.name ? q.name : text.replace(/\s+/g, " ").trim().split(" ").slice(0, 2).join(" ");
        const result = (await v.apply(target, args)) as { rows: unknown[] };
        statements.push({ what, rows: result.rows });
        return result;
      };
    },
  });
}

let lastOutboxId = 0;

/** One round on one partition, as the consumer runs it: verification, then the exactly-once step. */
async function round(instance: number, messages: (Submission | Buffer)[], partition = 0): Promise<RoundOutcome> {
  const { deps } = instances[instance] as (typeof instances)[number];
  const from = offsets.get(partition) ?? 0;
  const fetched = {
    topic: topics.submitted,
    partition,
    messages: messages.map((m, i) => ({
      offset: String(from + i),
      key: null,
      value: Buffer.isBuffer(m) ? m : codec.encode("Submission", m),
    })),
  };
  const verified = { ...fetched, messages: await verifyBatch(deps, fetched) };
  const statements: Statement[] = [];
  const outcome = await applyExactlyOnce(db.pool, deps.consumerGroup, [verified], {
    applyLock: DEDUP_APPLY_LOCK,
    apply: (tx, batches) => applyBatch(deps, recording(tx, statements), batches),
  });
  offsets.set(partition, from + messages.length);
  const { rows } = await db.pool.query<{ id: number; topic: string; message_value: Buffer }>(
    "SELECT id, topic, message_value FROM outbox WHERE id > $1 ORDER BY id",
    [lastOutboxId],
  );
  lastOutboxId = rows.at(-1)?.id ?? lastOutboxId;
  return {
    result: outcome.result,
    statements,
    records: rows.filter((r) => r.topic === topics.canonical).map((r) => codec.decode("CanonicalRecord", r.message_value).value),
    rejections: rows.filter((r) => r.topic === topics.rejected).map((r) => codec.decode("Rejection", r.message_value).value),
  };
}

const names = (o: RoundOutcome) => o.statements.map((s) => s.what);
const submit = (signer: AgencySigner, hashes: Hash[], submittedAt = Date.now()) => signedSubmission(signer, { hashes, submittedAt });
const byHash = (records: CanonicalRecord[], h: Hash) => records.find((r) => r.hashes.some((x) => x.alg === h.alg && x.value === h.value));

async function query<T>(sql: string, values: unknown[] = []): Promise<T[]> {
  return (await db.pool.query(sql, values)).rows as T[];
}

/** What the round's load read for the near-duplicate catch-up. */
function catchUpRead(o: RoundOutcome): { near: number[]; own: number[] } {
  const row = o.statements.find((s) => s.what === "dedup.load")?.rows[0] as {
    near_hashes: { hash_seq: number }[];
    own_indexable: number[];
  };
  return { near: row.near_hashes.map((h) => h.hash_seq), own: row.own_indexable };
}

async function hashSeqOf(h: Hash): Promise<number> {
  const [row] = await query<{ hash_seq: number }>("SELECT hash_seq FROM record_hashes WHERE alg = $1 AND value = $2", [h.alg, h.value]);
  if (!row) throw new Error(`no row for ${h.alg}:${h.value}`);
  return row.hash_seq;
}

const indexed = (instance: number, h: Hash) =>
  instances[instance]?.linker.indexes
    .get(h.alg)
    ?.query(h.value)
    .filter((m) => m.distance === 0).length ?? 0;

describe("dedup's round against PostgreSQL", () => {
  it("costs one load and one write statement, for one submission or a hundred", async () => {
    const first = [md5(), sha1(), pdq()];
    const one = await round(0, [submit(forceA, first)]);
    expect(names(one)).toEqual(["dedup.load", "dedup.write"]);
    expect(one.result).toMatchObject({ applied: 1, rejected: 0 });
    expect(one.records).toHaveLength(1);

    // A hundred: new images, and a third of them a second force's sighting of an image the hub holds.
    const known = [first[0] as Hash, ...Array.from({ length: 33 }, () => md5())];
    await round(
      0,
      known.slice(1).map((h) => submit(forceA, [h, pdq()])),
    );
    const hundred = Array.from({ length: 100 }, (_, i) => submit(forceB, i % 3 === 0 ? [known[i / 3] as Hash] : [md5(), sha1(), pdq()]));
    const mixed = await round(0, hundred);
    expect(names(mixed)).toEqual(["dedup.load", "dedup.write"]);
    expect(mixed.result).toMatchObject({ applied: 100, rejected: 0 });
    expect(mixed.records).toHaveLength(100);
    const seen = mixed.records.filter((r) => r.provenance.agencies.length === 2);
    expect(seen).toHaveLength(34);
    // Every record's stored sightings and hashes are the ones it was published with.
    for (const r of mixed.records) {
      const sightings = await query<{ agency_id: string }>("SELECT agency_id FROM sightings WHERE record_id = $1 ORDER BY agency_id", [
        r.recordId,
      ]);
      expect(sightings.map((s) => s.agency_id)).toEqual(r.provenance.agencies);
      const hashes = await query<{ n: number }>("SELECT count(*)::int AS n FROM record_hashes WHERE record_id = $1", [r.recordId]);
      expect(hashes[0]?.n).toBe(r.hashes.length);
    }
    // The first submission's record went from revision 1 to 2 in place: one row, its record_no kept.
    const again = byHash(mixed.records, first[0] as Hash);
    expect(again).toMatchObject({ recordId: one.records[0]?.recordId, revision: 2 });
  });

  it("a round of refusals only queues them, original bytes and all; a replay is refused after the load", async () => {
    const garbage = Buffer.from("not avro at all");
    const refused = await round(0, [garbage]);
    expect(names(refused)).toEqual(["dedup.write"]);
    expect(refused.rejections.map((r) => [r.reason, r.originalBytes.equals(garbage)])).toEqual([["BAD_MAGIC", true]]);

    const sub = submit(forceA, [md5()]);
    await round(0, [sub]);
    const replay = await round(0, [sub]);
    expect(names(replay)).toEqual(["dedup.load", "dedup.write"]);
    expect(replay.result).toMatchObject({ applied: 0, rejected: 1 });
    expect(replay.rejections.map((r) => r.reason)).toEqual(["DUPLICATE_SUBMISSION"]);
  });

  it("a merge leaves exactly the survivor's hashes and sightings, and recounts a degenerate value's carriers", async () => {
    const shared = pdq();
    const [a, b, c] = [md5(), md5(), md5()];
    await round(0, [submit(forceA, [a, shared]), submit(forceB, [b, shared]), submit(forceC, [c, shared])]);
    const carriers = () =>
      query<{ records: number; reason: string }>("SELECT records, reason FROM degenerate_hashes WHERE value = $1", [shared.value]);
    expect(await carriers()).toEqual([{ records: 3, reason: "SHARED" }]);

    // The NCA-like bridge: a and b are one file; the absorbed record's rows go, the survivor's stay.
    const bridge = await round(0, [submit(forceC, [a, b, shared])]);
    // The value turned SHARED in the round before: the index drops it from its carriers first.
    expect(names(bridge)).toEqual(["dedup.load", "SELECT r.record_no,", "dedup.write"]);
    const survivor = bridge.records.find((r) => !r.mergedInto);
    const absorbed = bridge.records.find((r) => r.mergedInto);
    expect(absorbed?.mergedInto).toBe(survivor?.recordId);
    const rows = await query<{ record_id: string; alg: string; value: string }>(
      "SELECT record_id, alg, value FROM record_hashes WHERE value = ANY($1) ORDER BY alg, value",
      [[a.value, b.value, shared.value]],
    );
    const ofSurvivor = rows.filter((r) => r.record_id === survivor?.recordId).map((r) => r.value);
    expect(ofSurvivor.sort()).toEqual([a.value, b.value, shared.value].sort());
    expect(rows.filter((r) => r.record_id === absorbed?.recordId)).toEqual([]);
    const sightings = await query<{ record_id: string; agency_id: string }>(
      "SELECT record_id, agency_id FROM sightings WHERE record_id = ANY($1) ORDER BY agency_id",
      [[survivor?.recordId, absorbed?.recordId]],
    );
    expect(sightings).toEqual(["force-a", "force-b", "force-c"].map((agency_id) => ({ record_id: survivor?.recordId, agency_id })));
    // Two of the three carriers became one: counted from the statement's own delete and insert.
    const [count] = await query<{ n: number }>("SELECT count(*)::int AS n FROM record_hashes WHERE value = $1", [shared.value]);
    expect(count?.n).toBe(2);
    expect(await carriers()).toEqual([{ records: 2, reason: "SHARED" }]);
  });

  it("an instance indexes its own perceptual rows without reading them back; the other instance reads them", async () => {
    // Both instances up to date first, so what follows is only what each round wrote.
    await round(0, [submit(forceA, [md5()])]);
    await round(1, [submit(forceA, [md5()])]);

    const mine = pdq();
    await round(0, [submit(forceA, [md5(), mine])]);
    const seq = await hashSeqOf(mine);
    const next = await round(0, [submit(forceA, [md5()])]);
    expect(catchUpRead(next)).toEqual({ near: [], own: [seq] });
    expect(indexed(0, mine)).toBe(1);

    // The other instance reads the row as any other, and links a near duplicate to it.
    const other = await round(1, [submit(forceB, [md5(), near(mine.value, 3)])]);
    expect(catchUpRead(other).near).toContain(seq);
    expect(indexed(1, mine)).toBe(1);
    expect(other.records.map((r) => r.nearDuplicates.length)).toEqual([1, 1]);
  });

  it("the rows of a round that rolled back never enter the index; the retried round's do", async () => {
    const lost = pdq();
    const sub = submit(forceA, [md5(), lost]);
    failNextRound = true;
    // Rolled back after the write: the stored offset stays, so the same batch comes again.
    await expect(round(0, [sub], 1)).rejects.toThrow("injected failure before COMMIT");
    expect(await query("SELECT 1 FROM record_hashes WHERE value = $1", [lost.value])).toEqual([]);

    const retried = await round(0, [sub], 1);
    expect(catchUpRead(retried).own).toEqual([]); // the rolled-back rows were looked for, and not found
    expect(retried.result.applied).toBe(1);
    expect(indexed(0, lost)).toBe(0); // indexed at the next catch-up, as a row read back would be

    const seq = await hashSeqOf(lost);
    const after = await round(0, [submit(forceB, [md5(), near(lost.value, 2)])], 1);
    expect(catchUpRead(after)).toEqual({ near: [], own: [seq] });
    expect(indexed(0, lost)).toBe(1);
    expect(after.records.map((r) => r.nearDuplicates.length)).toEqual([1, 1]);
  });

  it("reads on past the round's page when other instances wrote more than it holds", async () => {
    await round(0, [submit(forceA, [md5()])]); // the rows of the round before are in the index now
    const before = instances[0]?.linker.indexedHashes ?? 0;
    // Another instance's large import, written straight into the store.
    await db.pool.query(
      `WITH r AS (
         INSERT INTO canonical_records (record_id, revision, deleted, content_type, first_seen_at, updated_at)
         SELECT gen_random_uuid(), 1, false, 'image', 1, 1 FROM generate_series(1, 1200) RETURNING record_id)
       INSERT INTO record_hashes (alg, value, record_id, quality, exact)
       SELECT 'pdq', md5(record_id::text) || md5(record_id::text || 'x'), record_id, 90, false FROM r`,
    );
    const caught = await round(0, [submit(forceA, [md5()])]);
    expect(names(caught)).toEqual(["dedup.load", "SELECT (SELECT", "dedup.write"]);
    expect((instances[0]?.linker.indexedHashes ?? 0) - before).toBe(1200);
  });
});
