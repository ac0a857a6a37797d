/**
 * S3 feed files at a size that takes several pages (PostgreSQL, S3; no Kafka): distribution streams
 * a snapshot and a delta from the hub database to S3 (exports.ts, export-object.ts), and a partner
 * sink streams the snapshot into its own database (bootstrap.ts). What arrives is exactly what the
 * hub holds; a snapshot whose bytes no longer match its signed manifest is refused with nothing kept.
 * The snapshot reads the chain heads and the topic offsets while holding the distribution apply lock,
 * and lets it go before it streams the entries.
 */
import { createHash, randomUUID } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { exportDelta, exportSnapshot } from "../../services/distribution/exports.ts";
import type { ExportDeps } from "../../services/distribution/exports.ts";
import { bootstrapFromSnapshot } from "../../services/partner-sink/bootstrap.ts";
import { SINK_MIGRATIONS } from "../../services/partner-sink/main.ts";
import { DISTRIBUTION_APPLY_LOCK } from "../../services/shared/advisory-locks.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { manifestSignatureValid } from "../../services/shared/wire/snapshot-manifest.ts";
import type { ExportManifest, SnapshotEntry } from "../../services/shared/wire/snapshot-manifest.ts";
import { generateSigningKeyPair, privateKeyFromPem, publicKeyFromRaw } from "../../services/shared/wire/signing.ts";
import { randomHex } from "../support/fixtures.ts";
import { freshDatabase, stackEnv, uniqueName, stackS3Client } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

/** More than one page of the exporter (2,000 rows) and several slices of the bootstrap (1,000). */
const ENTRIES = 4_500;
const LOG_RECORDS = 2_500;

const env = stackEnv();
const s3 = stackS3Client(env.s3);
const keys = generateSigningKeyPair();
const publicKey = publicKeyFromRaw(keys.publicKey);
const hub = {
  keyId: "hub:exports-test",
  privateKey: privateKeyFromPem(keys.privateKeyPem),
  pseudonymSecret: "exports-test-secret-0123456789",
};
const prefix = `${uniqueName("exp")}/feeds`;
let hubDb: TestDatabase;
const partnerDbs: TestDatabase[] = [];

async function get(key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

function deps(feedOffsets?: ExportDeps["feedOffsets"]): ExportDeps {
  return { pool: hubDb.pool, s3, bucket: env.s3.bucket, hub, prefix, ...(feedOffsets ? { feedOffsets } : {}) };
}

async function partnerDb(): Promise<TestDatabase> {
  const db = await freshDatabase("exp_sink");
  await migrate(db.pool, [{ namespace: "partner-sink", dir: SINK_MIGRATIONS }]);
  partnerDbs.push(db);
  return db;
}

function bootstrap(db: TestDatabase, partnerId: string) {
  return bootstrapFromSnapshot({
    pool: db.pool,
    s3,
    bucket: env.s3.bucket,
    prefix,
    partnerId,
    keys: [{ keyId: hub.keyId, publicKey, validUntil: null }],
    consumerGroup: `sink-${partnerId}`,
    topic: `feed.${partnerId}.v1`,
  });
}

/** A partner's feed in the hub database: ENTRIES entries and the heads of two partitions. */
async function seedFeed(partnerId: string): Promise<void> {
  const values = Array.from({ length: ENTRIES }, () => randomHex(16));
  await hubDb.pool.query(
    `INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
     SELECT $1, 'md5', v, gen_random_uuid(), 1 + (random() * 5)::int, 'A', 'image', '{}'::jsonb FROM unnest($2::text[]) AS v`,
    [partnerId, values],
  );
  await hubDb.pool.query(
    "INSERT INTO feed_partitions (partner_id, partition, last_seq, last_digest) VALUES ($1, 0, 2300, $2), ($1, 1, 2200, $3)",
    [partnerId, createHash("sha256").update("a").digest(), createHash("sha256").update("b").digest()],
  );
}

async function latestManifest(partnerId: string): Promise<ExportManifest> {
  const pointer = JSON.parse((await get(`${prefix}/${partnerId}/latest-snapshot.json`)).toString()) as { manifest: string };
  return JSON.parse((await get(pointer.manifest)).toString()) as ExportManifest;
}

/** Whether another session could take the distribution apply lock now (it cannot while a session holds it). */
async function applyLockFree(): Promise<boolean> {
  const c = new pg.Client({ connectionString: hubDb.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [DISTRIBUTION_APPLY_LOCK]);
    if (rows[0]?.ok) await c.query("SELECT pg_advisory_unlock($1)", [DISTRIBUTION_APPLY_LOCK]);
    return rows[0]?.ok ?? false;
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  hubDb = await freshDatabase("exp_hub");
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
});

afterAll(async () => {
  for (const db of partnerDbs) await db.drop();
  await hubDb?.drop();
});

describe("S3 exports and the snapshot bootstrap, streamed", () => {
  it("a snapshot of several pages reaches a new partner database whole, in order, under a valid manifest", async () => {
    const partnerId = "exp-snapshot";
    await seedFeed(partnerId);
    const lockHeld: boolean[] = [];
    const manifest = await exportSnapshot(
      deps({
        topic: (p) => `feed.${p}.v1`,
        highWatermarks: async () => {
          lockHeld.push(!(await applyLockFree()));
          return { "0": "2300", "1": "2200" };
        },
      }),
      partnerId,
    );
    // The offsets were read under the apply lock, which is free again afterwards.
    expect(lockHeld).toEqual([true]);
    expect(await applyLockFree()).toBe(true);

    expect(await latestManifest(partnerId)).toEqual(manifest);
    expect(manifestSignatureValid(manifest, publicKey)).toBe(true);
    expect(manifest.count).toBe(ENTRIES);
    expect(manifest.kafkaOffsets).toEqual({ "0": "2300", "1": "2200" });
    expect(manifest.heads["0"]?.seq).toBe(2300);
    const body = await get(manifest.object);
    expect(createHash("sha256").update(body).digest("hex")).toBe(manifest.sha256);
    const lines = gunzipSync(body).toString().split("\n");
    expect(lines.pop()).toBe("");
    const entries = lines.map((l) => JSON.parse(l) as SnapshotEntry);
    const { rows: held } = await hubDb.pool.query<{ value: string }>(
      "SELECT value FROM feed_entries WHERE partner_id = $1 ORDER BY value",
      [partnerId],
    );
    expect(entries.map((e) => e.value)).toEqual(held.map((r) => r.value));

    const db = await partnerDb();
    expect(await bootstrap(db, partnerId)).toMatchObject({ entries: ENTRIES });
    const { rows: loaded } = await db.pool.query<{ value: string; record_ref: string }>(
      "SELECT value, record_ref FROM partner_hashes ORDER BY value",
    );
    expect(loaded.map((r) => r.value)).toEqual(held.map((r) => r.value));
    expect(loaded.map((r) => r.record_ref)).toEqual(entries.map((e) => e.recordRef));
    const { rows: state } = await db.pool.query<{ partition: number; last_seq: number }>(
      "SELECT partition, last_seq FROM feed_state ORDER BY partition",
    );
    expect(state).toEqual([
      { partition: 0, last_seq: 2300 },
      { partition: 1, last_seq: 2200 },
    ]);
    const { rows: offsets } = await db.pool.query<{ partition: number; next_offset: string }>(
      "SELECT partition, next_offset::text FROM consumer_offsets ORDER BY partition",
    );
    expect(offsets).toEqual([
      { partition: 0, next_offset: "2300" },
      { partition: 1, next_offset: "2200" },
    ]);
  });

  it("refuses a snapshot whose object no longer matches its signed manifest, keeping nothing", async () => {
    const partnerId = "exp-tampered";
    await seedFeed(partnerId);
    const manifest = await exportSnapshot(deps(), partnerId);
    const original = gunzipSync(await get(manifest.object)).toString();
    // A well-formed object with one entry's category changed: only the digest tells.
    const tampered = original.replace(/"category":"A"/, '"category":"C"');
    expect(tampered).not.toBe(original);
    await s3.send(new PutObjectCommand({ Bucket: env.s3.bucket, Key: manifest.object, Body: gzipSync(tampered) }));

    const db = await partnerDb();
    await expect(bootstrap(db, partnerId)).rejects.toMatchObject({ reason: "BAD_SIGNATURE" });
    const { rows } = await db.pool.query<{ hashes: number; states: number }>(
      "SELECT (SELECT count(*) FROM partner_hashes)::int AS hashes, (SELECT count(*) FROM feed_state)::int AS states",
    );
    expect(rows[0]).toEqual({ hashes: 0, states: 0 });
  });

  it("a delta of several pages carries every logged record in partition and seq order, then prunes them", async () => {
    const partnerId = "exp-delta";
    expect(await exportDelta(deps(), partnerId)).toBeNull();
    const bodies = Array.from({ length: LOG_RECORDS }, () => Buffer.from(randomUUID()));
    const partitions = bodies.map((_, i) => i % 2);
    const seqs = bodies.map((_, i) => 101 + Math.floor(i / 2));
    await hubDb.pool.query(
      "INSERT INTO feed_log (partner_id, partition, seq, body) SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bytea[])",
      [partnerId, partitions, seqs, bodies],
    );
    const manifest = await exportDelta(deps(), partnerId);
    if (!manifest) throw new Error("no delta written");
    expect(manifestSignatureValid(manifest, publicKey)).toBe(true);
    expect(manifest.count).toBe(LOG_RECORDS);
    const last = LOG_RECORDS / 2 + 100;
    expect(manifest.from).toEqual({ "0": 101, "1": 101 });
    expect(manifest.heads["1"]).toEqual({
      seq: last,
      digest: createHash("sha256")
        .update(bodies[LOG_RECORDS - 1] as Buffer)
        .digest("hex"),
    });
    const body = await get(manifest.object);
    expect(createHash("sha256").update(body).digest("hex")).toBe(manifest.sha256);
    const records = gunzipSync(body)
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => Buffer.from((JSON.parse(l) as { record: string }).record, "base64").toString());
    const expected = bodies.map((b, i) => ({ p: partitions[i] as number, s: seqs[i] as number, b: b.toString() }));
    expected.sort((x, y) => x.p - y.p || x.s - y.s);
    expect(records).toEqual(expected.map((e) => e.b));
    const { rows } = await hubDb.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM feed_log WHERE partner_id = $1", [partnerId]);
    expect(rows[0]?.n).toBe(0);
  });
});
