/**
 * What one distribution round costs and holds, against PostgreSQL only: the apply step is one
 * statement that loads (and row-locks every chain head before a chain is extended) and one that
 * writes, for one record or a hundred; the writes keep their order in feed_outbox (rejections, feed
 * records, audit), unmappable counts add up, and the survivor of a holder merged before
 * distributed_merges knew it is still read, from its body (one statement more).
 */
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HubSigner } from "../../services/distribution/feed-writer.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { distributeBatch } from "../../services/distribution/processor.ts";
import type { DistributionDeps } from "../../services/distribution/processor.ts";
import { DISTRIBUTION_APPLY_LOCK } from "../../services/shared/advisory-locks.ts";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import { createLogger } from "../../services/shared/logging.ts";
import type { PoolClient } from "../../services/shared/postgres.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { topicNames } from "../../services/shared/topics.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { CanonicalRecord, Hash } from "../../services/shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import { hotlinePolicy, industryPolicy, randomHex, sampleCanonicalRecord } from "../support/fixtures.ts";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const DISTRIBUTION_MIGRATIONS = fileURLToPath(new URL("../../services/distribution/migrations/", import.meta.url));
const codec = new AvroCodec();
const topics = topicNames("round-test");
const hub: HubSigner = {
  keyId: "hub:test",
  privateKey: privateKeyFromPem(generateSigningKeyPair().privateKeyPem),
  pseudonymSecret: "round-test-secret-0123456789",
};
let db: TestDatabase;

beforeAll(async () => {
  db = await freshDatabase("dround");
  await migrate(db.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
});

afterAll(async () => {
  await db?.drop();
});

let n = 0;

/**
 * Partners of their own per test; deliver() runs one round of per-partition batches through the
 * exactly-once step and names the statements distribution's apply ran (the name of a prepared one).
 * `afterLoad` runs once the round's first statement has returned; `replay` sends the partitions'
 * last batches again, at their offsets.
 */
function harness(policies: PartnerPolicy[] = [hotlinePolicy(`uk-${++n}`), industryPolicy(`ics-${n}`, { delivery: "both" })]) {
  const deps: DistributionDeps = {
    pool: db.pool,
    codec,
    topics,
    hub,
    consumerGroup: `round-${++n}-${randomHex(4)}`,
    logger: createLogger("distribution-round-test", "silent"),
    policies: () => policies,
  };
  const next = new Map<number, number>();
  return {
    policies,
    async deliver(
      parts: Record<number, (CanonicalRecord | Buffer)[]>,
      options: { afterLoad?: () => Promise<void>; replay?: boolean } = {},
    ) {
      const statements: string[] = [];
      const batches = Object.entries(parts).map(([p, records]) => {
        const first = (next.get(Number(p)) ?? 0) - (options.replay ? records.length : 0);
        next.set(Number(p), first + records.length);
        const messages = records.map((r, i) => ({
          offset: String(first + i),
          key: null,
          value: Buffer.isBuffer(r) ? r : codec.encode("CanonicalRecord", r),
        }));
        return { topic: topics.canonical, partition: Number(p), messages };
      });
      const outcome = await applyExactlyOnce(db.pool, deps.consumerGroup, batches, {
        applyLock: DISTRIBUTION_APPLY_LOCK,
        apply: (tx, unapplied) => distributeBatch(deps, counting(tx, statements, options.afterLoad), unapplied),
      });
      return { ...outcome.result, statements };
    },
  };
}

/** `tx` with each query's statement named in `statements` (a prepared one by its name, others by their first three words). */
function counting(tx: PoolClient, statements: string[], afterFirst?: () => Promise<void>): PoolClient {
  return new Proxy(tx, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop !== "query" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
      return async (...args: unknown[]) => {
        const q = args[0] as string | { name?: string; text: string };
        const text = typeof q === "string" ? q : q.text;
        statements.push((typeof q === "string" ? undefined : q.name) ?? text.replace(/\s+/g, " ").trim().split(" ").slice(0, 3).join(" "));
        const result = await v.apply(target, args);
        if (statements.length === 1) await afterFirst?.();
        return result;
      };
    },
  });
}

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });
const pdq = (): Hash => ({ alg: "pdq", value: randomHex(32), quality: 90 });

function record(over: Partial<CanonicalRecord> = {}): CanonicalRecord {
  return { ...sampleCanonicalRecord(), revision: 1, hashes: [md5(), sha1(), pdq()], classification: { uk: "A", ics: "A1" }, ...over };
}

const ROUND = ["distribution.load-round", "distribution.write-round"];

async function outboxTopicsSince(id: number): Promise<string[]> {
  const { rows } = await db.pool.query<{ topic: string }>("SELECT topic FROM feed_outbox WHERE id > $1 ORDER BY id", [id]);
  return rows.map((r) => r.topic);
}

async function lastOutboxId(): Promise<number> {
  const { rows } = await db.pool.query<{ id: string | null }>("SELECT max(id)::text AS id FROM feed_outbox");
  return Number(rows[0]?.id ?? 0);
}

describe("a distribution round", () => {
  it("is one statement that loads and one that writes, for one record or a hundred", async () => {
    const h = harness();
    const one = await h.deliver({ 0: [record()] });
    expect(one.statements).toEqual(ROUND);
    expect(one).toMatchObject({ records: 1, skipped: 0, feedRecords: 4 });
    const earlier = Array.from({ length: 20 }, () => record());
    await h.deliver({ 1: earlier });
    // 80 new records and 20 revisions (regraded: their hashes leave the hotline's feed), over 3 partitions.
    const hundred = [
      ...Array.from({ length: 80 }, () => record()),
      ...earlier.map((r) => ({ ...r, revision: 2, classification: { uk: "NON_INDECENT" as const, ics: null } })),
    ];
    const round = await h.deliver({ 0: hundred.slice(0, 30), 1: hundred.slice(30, 70), 2: hundred.slice(70) });
    expect(round.statements).toEqual(ROUND);
    expect(round).toMatchObject({ records: 100, skipped: 0, feedRecords: 80 * 4 + 20 * 4 });
  });

  it("with only stale revisions only loads; redelivered, it runs no statement", async () => {
    const h = harness();
    const r = record({ revision: 3 });
    await h.deliver({ 0: [r] });
    const redelivered = await h.deliver({ 0: [r] }, { replay: true });
    expect(redelivered).toMatchObject({ records: 0, skipped: 1, statements: [] });
    const stale = await h.deliver({ 0: [{ ...r, revision: 2 }] });
    expect(stale).toMatchObject({ records: 0, skipped: 1, statements: ["distribution.load-round"] });
    const { rows } = await db.pool.query("SELECT 1 FROM distributed_records WHERE record_id = $1 AND revision = 3", [r.recordId]);
    expect(rows).toHaveLength(1);
  });

  it("row-locks every chain head in its load, before any chain is extended", async () => {
    const h = harness();
    await h.deliver({ 0: [record()] });
    const probe = new pg.Client({ connectionString: db.url });
    await probe.connect();
    try {
      let lockError: unknown = null;
      const afterLoad = async () => {
        await probe
          .query("SELECT 1 FROM feed_partitions WHERE partner_id = $1 FOR UPDATE NOWAIT", [h.policies[0]?.partnerId])
          .catch((err) => {
            lockError = err;
          });
      };
      const round = await h.deliver({ 0: [record()] }, { afterLoad });
      expect(round.statements).toEqual(ROUND);
      expect((lockError as { code?: string } | null)?.code).toBe("55P03");
    } finally {
      await probe.end();
    }
  });

  it("queues rejections, then feed records, then their audit, and adds up unmappable counts", async () => {
    const ics = industryPolicy(`ics-unmapped-${++n}`);
    const h = harness([ics]);
    const before = await lastOutboxId();
    // Entitled to the ICS partner (B, confirmed) but without an ICS category: counted, not sent.
    const unmapped = () => record({ classification: { uk: "B", ics: null } });
    const round = await h.deliver({ 0: [Buffer.from("not a canonical record"), record(), unmapped(), unmapped()] });
    expect(round.statements).toEqual(ROUND);
    expect(await outboxTopicsSince(before)).toEqual([
      topics.rejected,
      topics.feed(ics.partnerId),
      topics.feed(ics.partnerId),
      topics.audit,
    ]);
    const { rows } = await db.pool.query<{ count: number }>("SELECT count FROM unmappable_counts WHERE partner_id = $1", [ics.partnerId]);
    expect(rows).toEqual([{ count: 2 }]);
    await h.deliver({ 0: [unmapped()] });
    const again = await db.pool.query<{ count: number }>("SELECT count FROM unmappable_counts WHERE partner_id = $1", [ics.partnerId]);
    expect(again.rows).toEqual([{ count: 3 }]);
  });

  it("reads the survivor a holder's body names when distributed_merges does not know it, in one statement more", async () => {
    const ics = industryPolicy(`ics-legacy-${++n}`);
    const h = harness([ics]);
    const shared = pdq();
    const S = record({ updatedAt: 1_000 });
    const M = record({ hashes: [md5(), shared], updatedAt: 2_000 });
    await h.deliver({ 0: [S], 1: [M] });
    // M merged into S; S's merge revision is still on its way, so the ICS partner keeps M's PDQ value.
    await h.deliver({ 1: [{ ...M, revision: 2, hashes: [], deleted: true, mergedInto: S.recordId, updatedAt: 3_000 }] });
    await db.pool.query("DELETE FROM distributed_merges WHERE merged_id = $1", [M.recordId]);
    // A record listing the value as degenerate touches it (its holder M is loaded, and M's survivor) without claiming it.
    const W = record({ hashes: [md5(), shared], degenerate: [{ alg: "pdq", value: shared.value, reason: "SHARED" }], updatedAt: 4_000 });
    const round = await h.deliver({ 2: [W] });
    // The survivor's body, with whether it is under review.
    expect(round.statements).toEqual([ROUND[0], "SELECT record_id, body,", ROUND[1]]);
    const { rows } = await db.pool.query<{ record_id: string }>("SELECT record_id FROM feed_entries WHERE partner_id = $1 AND value = $2", [
      ics.partnerId,
      shared.value,
    ]);
    expect(rows).toEqual([{ record_id: M.recordId }]);
  });
});
