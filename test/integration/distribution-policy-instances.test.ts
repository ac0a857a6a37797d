/**
 * Two distribution instances share one hub database, and each refreshes its policies on a timer of
 * its own. When one reconciles a partner's newer policy, a round of the other must not plan with
 * the older policy it still holds in memory: its records would reach the partner as the older policy
 * allowed, and no later refresh reconciles a version already marked applied.
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
import { policyRefresh } from "../../services/distribution/policy-refresh.ts";
import type { PolicyRefresh } from "../../services/distribution/policy-refresh.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
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
  };
  return { refresh, deps };
}

describe("distribution instances and a policy change", () => {
  it("a round plans with the policy another instance reconciled, not the one it last refreshed", async () => {
    const partnerId = "hotline-two-instances";
    const wide = hotlinePolicy(partnerId, { delivery: "s3", categories: ["A", "B", "C"] });
    await db.pool.query("INSERT INTO partners (partner_id, name) VALUES ($1, $1)", [partnerId]);
    await setPolicy(db.pool, wide);
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
    await db.pool.query("INSERT INTO partners (partner_id, name) VALUES ($1, $1)", [partnerId]);
    await setPolicy(db.pool, hotlinePolicy(partnerId, { delivery: "s3" }));
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
