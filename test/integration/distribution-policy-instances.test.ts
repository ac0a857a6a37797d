/**
 * Two distribution instances share one hub database, and each refreshes its policies on a timer of
 * its own. When one reconciles a partner's newer policy, a round of the other must not plan with
 * the older policy it still holds in memory: its records would reach the partner as the older policy
 * allowed, and no later refresh reconciles a version already marked applied. The same goes for a
 * round between the slices of a reconciliation in progress.
 */
import type { Admin } from "kafkajs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabase } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";
import { hotlinePolicy, sampleCanonicalRecord } from "../support/fixtures.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { generateSigningKeyPair, privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import { LOCAL_TOPIC_PLAN, topicNames } from "../../services/shared/topics.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { policyRefresh } from "../../services/distribution/policy-refresh.ts";
import type { PolicyRefresh } from "../../services/distribution/policy-refresh.ts";
import { isActivePolicy, setPolicy } from "../../services/distribution/policy-store.ts";
import { canonicalStep, processCanonicalBatch, reconcilePartner } from "../../services/distribution/processor.ts";
import { applyExactlyOnce } from "../../services/shared/exactly-once-step.ts";
import type { PoolClient } from "../../services/shared/postgres.ts";
import type { DistributionDeps } from "../../services/distribution/processor.ts";

const DISTRIBUTION_MIGRATIONS = fileURLToPath(new URL("../../services/distribution/migrations/", import.meta.url));
const codec = new AvroCodec();
const topics = topicNames("policy-instances-test");
const logger = createLogger("distribution-test", "silent");
const hub = {
  keyId: "hub:test",
  privateKey: privateKeyFromPem(generateSigningKeyPair().privateKeyPem),
  pseudonymSecret: "policy-instances-secret-0123456789",
};
let db: TestDatabase;

beforeAll(async () => {
  db = await freshDatabase("dist-pol");
  await migrate(db.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
});
afterAll(async () => {
  await db?.drop();
});

/** One instance: its policy refresh (S3 delivery, so no Kafka admin is needed) and its deps. */
function instance(name: string): { refresh: PolicyRefresh; deps: DistributionDeps } {
  let deps: DistributionDeps | null = null;
  const refresh = policyRefresh({
    db: db.pool,
    admin: {} as Admin,
    topics,
    feedTopicPlan: LOCAL_TOPIC_PLAN,
    logger,
    reconcile: (p) => reconcilePartner(deps as DistributionDeps, p),
    onReconciled: () => undefined,
  });
  deps = {
    pool: db.pool,
    codec,
    topics,
    hub,
    consumerGroup: `policy-instances-${name}`,
    logger,
    policies: refresh.current,
    roundPolicies: refresh.forRound,
    reconcileWhile: isActivePolicy,
  };
  return { refresh, deps };
}

/** A registered partner with an S3-delivered hotline policy of these categories, as set (version 1). */
async function hotlinePartner(partnerId: string, categories: PartnerPolicy["categories"]): Promise<Omit<PartnerPolicy, "version">> {
  const policy = hotlinePolicy(partnerId, { delivery: "s3", categories });
  await db.pool.query("INSERT INTO partners (partner_id, name) VALUES ($1, $1)", [partnerId]);
  await setPolicy(db.pool, policy);
  return policy;
}

/** The partner's feed entries of one record. */
async function feedEntries(partnerId: string, recordId: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    "SELECT count(*)::text AS n FROM feed_entries WHERE partner_id = $1 AND record_id = $2",
    [partnerId, recordId],
  );
  return Number(rows[0]?.n);
}

describe("distribution instances and a policy change", () => {
  it("a round plans with the policy another instance reconciled, not the one it last refreshed", async () => {
    const partnerId = "hotline-two-instances";
    const wide = await hotlinePartner(partnerId, ["A", "B", "C"]);
    const a = instance("a");
    const b = instance("b");
    await a.refresh.refresh();
    await b.refresh.refresh();
    expect(b.refresh.current().map((p) => p.version)).toEqual([1]);

    // The operator narrows the policy to A and B; instance a refreshes first and reconciles it.
    await setPolicy(db.pool, { ...wide, categories: ["A", "B"] });
    await a.refresh.refresh();
    expect(b.refresh.current().map((p) => p.version)).toEqual([1]);

    // Instance b's next round, before its own refresh: a category C record.
    const record = { ...sampleCanonicalRecord(), classification: { uk: "C" as const, ics: "B2" as const } };
    const result = await processCanonicalBatch(b.deps, topics.canonical, 0, [
      { offset: "0", value: codec.encode("CanonicalRecord", record) },
    ]);
    expect(result.records).toBe(1);
    const { rows } = await db.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM feed_log WHERE partner_id = $1", [partnerId]);
    expect(rows[0]?.n, "feed records issued for a category C record under the A/B policy").toBe("0");
    expect(b.refresh.current().map((p) => p.version)).toEqual([2]);
  });

  it("a round plans with a policy stored but not yet reconciled: a reconciliation's slices already done are not walked again", async () => {
    const partnerId = "hotline-widened";
    const narrow = await hotlinePartner(partnerId, ["A", "B"]);
    const a = instance("widen-a");
    await a.refresh.refresh();
    // A round under the narrow policy, as every round before the change.
    const before = { ...sampleCanonicalRecord(), classification: { uk: "A" as const, ics: "A1" as const } };
    await processCanonicalBatch(a.deps, topics.canonical, 1, [{ offset: "0", value: codec.encode("CanonicalRecord", before) }]);

    // The operator widens the policy to C. A reconciliation of it walks the distributed records in
    // slices of their ids, one transaction each; a round between two slices may distribute a record
    // whose id sorts before the slices done, and the reconciliation never sees it.
    await setPolicy(db.pool, { ...narrow, categories: ["A", "B", "C"] });
    const record = {
      ...sampleCanonicalRecord(),
      recordId: "00000000-0000-4000-8000-000000000001",
      classification: { uk: "C" as const, ics: "B2" as const },
    };
    await processCanonicalBatch(a.deps, topics.canonical, 1, [{ offset: "1", value: codec.encode("CanonicalRecord", record) }]);
    expect(
      await feedEntries(partnerId, record.recordId),
      "feed entries of a category C record under the widened, not yet applied policy",
    ).toBe(record.hashes.filter((h) => narrow.algorithms.includes(h.alg)).length);
    expect(a.refresh.current().find((p) => p.partnerId === partnerId)?.version).toBe(2);
  });

  it("a reconciliation of an older version stops at its next slice, leaving the newer one's feed as it is", async () => {
    const partnerId = "hotline-two-runs";
    const narrow = await hotlinePartner(partnerId, ["A", "B"]);
    const a = instance("runs-a");
    const b = instance("runs-b");
    await a.refresh.refresh();
    const older = a.refresh.current().find((p) => p.partnerId === partnerId) as PartnerPolicy;
    const record = { ...sampleCanonicalRecord(), classification: { uk: "C" as const, ics: "B2" as const } };
    await processCanonicalBatch(a.deps, topics.canonical, 2, [{ offset: "0", value: codec.encode("CanonicalRecord", record) }]);

    // Widened to C; instance b reconciles it while instance a is still in a run of the version before.
    await setPolicy(db.pool, { ...narrow, categories: ["A", "B", "C"] });
    await b.refresh.refresh();
    const entries = () => feedEntries(partnerId, record.recordId);
    expect(await entries()).toBeGreaterThan(0);
    // The older run's next slice: it must not take C back out, nor mark its version applied.
    expect(await reconcilePartner(a.deps, older)).toBe(0);
    expect(await entries(), "the widened policy's entries after a slice of the older run").toBeGreaterThan(0);
    const { rows } = await db.pool.query<{ version: number }>("SELECT version FROM policy_applied WHERE partner_id = $1", [partnerId]);
    expect(rows[0]?.version).toBe(2);
  });
});

/** `tx` with the text (or prepared name) of each statement it runs recorded in `statements`. */
function recording(tx: PoolClient, statements: string[]): PoolClient {
  return new Proxy(tx, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop !== "query" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
      return (...args: unknown[]) => {
        const q = args[0] as string | { name?: string; text: string };
        statements.push(typeof q === "string" ? q.replace(/\s+/g, " ").trim() : (q.name ?? q.text));
        return v.apply(target, args);
      };
    },
  });
}

describe("a distribution round's policy check", () => {
  it("comes with the round's first round trip: the apply runs only its load and write statements", async () => {
    const partnerId = "hotline-round-trip";
    await hotlinePartner(partnerId, ["A", "B", "C"]);
    const { refresh, deps } = instance("round-trip");
    await refresh.refresh();
    const step = canonicalStep(deps);
    const round = async (offset: number): Promise<{ records: number; statements: string[] }> => {
      const statements: string[] = [];
      const record = { ...sampleCanonicalRecord(), classification: { uk: "A" as const, ics: "A1" as const } };
      const value = codec.encode("CanonicalRecord", record);
      const outcome = await applyExactlyOnce(
        deps.pool,
        deps.consumerGroup,
        [{ topic: topics.canonical, partition: 0, messages: [{ offset: String(offset), key: null, value }] }],
        { ...step, apply: (tx, batches, begun) => step.apply(recording(tx, statements), batches, begun) },
      );
      return { records: outcome.result.records, statements };
    };
    // The first round after a refresh loads the policies once more; the next ones do not.
    await round(0);
    expect(await round(1)).toEqual({ records: 1, statements: ["distribution.load-round", "distribution.write-round"] });
  });
});
