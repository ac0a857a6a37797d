/**
 * S3 exports from two distribution instances against one hub database (PostgreSQL, S3; no Kafka):
 * rounds that start together write one set of exports, not two; deltas that run at the same time
 * never carry the same record twice; and every object written matches its signed manifest, so no
 * export is torn. What a partner may rely on whatever the number of exporting instances.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { s3Exports } from "../../services/distribution/export-schedule.ts";
import { exportDelta } from "../../services/distribution/exports.ts";
import type { ExportDeps } from "../../services/distribution/exports.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { createPool, migrate } from "../../services/shared/postgres.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import { manifestSignatureValid } from "../../services/shared/wire/snapshot-manifest.ts";
import type { ExportManifest } from "../../services/shared/wire/snapshot-manifest.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw } from "../../services/shared/wire/signing.ts";
import { hotlinePolicy, randomHex } from "../support/fixtures.ts";
import { freshDatabase, stackEnv, stackS3Client, uniqueName } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const env = stackEnv();
const s3 = stackS3Client(env.s3);
const keys = generateSigningKeyPair();
const publicKey = publicKeyFromRaw(keys.publicKey);
const hub = {
  keyId: "hub:instances-test",
  privateKey: privateKeyFromPem(keys.privateKeyPem),
  pseudonymSecret: "instances-secret-0123456789",
};
const prefix = `${uniqueName("exp2")}/feeds`;
const logger = createLogger("exports-test", "silent");
let hubDb: TestDatabase;
/** Each instance has its own pool, as two processes would. */
let pools: Pool[] = [];

const deps = (pool: Pool): ExportDeps => ({ pool, s3, bucket: env.s3.bucket, hub, prefix });

async function get(key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function manifestsOf(partnerId: string, kind: "deltas" | "snapshots"): Promise<ExportManifest[]> {
  const res = await s3.send(new ListObjectsV2Command({ Bucket: env.s3.bucket, Prefix: `${prefix}/${partnerId}/${kind}/` }));
  const keys = (res.Contents ?? []).map((o) => o.Key as string).filter((k) => k.endsWith(".manifest.json"));
  return Promise.all(keys.sort().map(async (k) => JSON.parse((await get(k)).toString()) as ExportManifest));
}

/** Each manifest signed, its object's bytes the ones it names; the delta records, as "partition:seq" -> body. */
async function checkedRecords(manifests: ExportManifest[]): Promise<string[]> {
  const out: string[] = [];
  for (const m of manifests) {
    expect(manifestSignatureValid(m, publicKey), m.object).toBe(true);
    const body = await get(m.object);
    expect(createHash("sha256").update(body).digest("hex"), m.object).toBe(m.sha256);
    const lines = gunzipSync(body).toString().split("\n").filter(Boolean);
    expect(lines).toHaveLength(m.count);
    for (const l of lines) out.push(Buffer.from((JSON.parse(l) as { record: string }).record, "base64").toString());
  }
  return out;
}

/** Logs `n` feed records (bodies "partition:seq") per partition from seq `from`. */
async function logRecords(partnerId: string, from: number, n: number): Promise<string[]> {
  const rows = [0, 1].flatMap((partition) => Array.from({ length: n }, (_, i) => ({ partition, seq: from + i })));
  await hubDb.pool.query(
    "INSERT INTO feed_log (partner_id, partition, seq, body) SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bytea[])",
    [partnerId, rows.map((r) => r.partition), rows.map((r) => r.seq), rows.map((r) => Buffer.from(`${r.partition}:${r.seq}`))],
  );
  return rows.map((r) => `${r.partition}:${r.seq}`);
}

beforeAll(async () => {
  hubDb = await freshDatabase("exp2_hub");
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  pools = [createPool(hubDb.url, { max: 4 }), createPool(hubDb.url, { max: 4 })];
});

afterAll(async () => {
  for (const p of pools) await p.end();
  await hubDb?.drop();
});

describe("S3 exports from two distribution instances", () => {
  it("deltas running at the same time carry each record once, whole, and prune only what they carried", async () => {
    const partnerId = "exp2-deltas";
    const logged = await logRecords(partnerId, 1, 1_500);
    const [a, b] = pools as [Pool, Pool];
    // Distinct times, so the two could not even share an object key.
    const written = await Promise.all([
      exportDelta(deps(a), partnerId, new Date(Date.UTC(2030, 0, 1, 0, 0, 0))),
      exportDelta(deps(b), partnerId, new Date(Date.UTC(2030, 0, 1, 0, 0, 1))),
    ]);
    const more = await logRecords(partnerId, 1_501, 300);
    const last = await Promise.all([exportDelta(deps(b), partnerId), exportDelta(deps(a), partnerId, new Date(Date.now() + 1_000))]);
    const manifests = await manifestsOf(partnerId, "deltas");
    expect(manifests.length).toBe([...written, ...last].filter(Boolean).length);
    const records = await checkedRecords(manifests);
    expect(records.length).toBe(new Set(records).size);
    expect(new Set(records)).toEqual(new Set([...logged, ...more]));
    const { rows } = await hubDb.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM feed_log WHERE partner_id = $1", [partnerId]);
    expect(rows[0]?.n).toBe(0);
    const recorded = await hubDb.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM feed_exports WHERE partner_id = $1", [
      partnerId,
    ]);
    expect(recorded.rows[0]?.n).toBe(manifests.length);
  });

  it("rounds that start together in two instances write one snapshot and one delta", async () => {
    const partnerId = "exp2-rounds";
    const policy = { ...hotlinePolicy(partnerId), delivery: "s3", version: 1 } as PartnerPolicy;
    await hubDb.pool.query(
      `INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
       SELECT $1, 'md5', v, gen_random_uuid(), 1, 'A', 'image', '{}'::jsonb FROM unnest($2::text[]) AS v`,
      [partnerId, Array.from({ length: 3_000 }, () => randomHex(16))],
    );
    const logged = await logRecords(partnerId, 1, 800);
    const rounds = pools.map((pool) => s3Exports({ deps: deps(pool), snapshotEvery: 1, policies: () => [policy], logger }));
    const done = await Promise.all(rounds.map((round) => round()));
    expect(done.filter(Boolean)).toHaveLength(1);
    const snapshots = await manifestsOf(partnerId, "snapshots");
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]?.count).toBe(3_000);
    const deltas = await manifestsOf(partnerId, "deltas");
    expect(deltas).toHaveLength(1);
    expect(new Set(await checkedRecords(deltas))).toEqual(new Set(logged));
    // Once the round is over, the other instance exports again.
    expect(await (rounds[1] as () => Promise<boolean>)()).toBe(true);
    expect(await manifestsOf(partnerId, "snapshots")).toHaveLength(2);
  });
});
