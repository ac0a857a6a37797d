/**
 * S3 delivery: full snapshots (what a partner holds now, with the chain head of every feed
 * partition) and deltas (the signed feed records issued since the last delta), each gzip JSON
 * Lines with a manifest signed by the hub key naming the object's SHA-256 and the seq ranges it
 * covers. feeds/<partner>/latest-snapshot.json points at the newest snapshot manifest, which is
 * where a new partner sink bootstraps before tailing its Kafka topic. The manifest format and its
 * signed bytes are the contract in services/shared/wire/snapshot-manifest.ts.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { DISTRIBUTION_APPLY_LOCK } from "../shared/advisory-locks.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool } from "../shared/postgres.ts";
import { feedsPrefix, latestSnapshotKey, serialiseManifest, signManifest } from "../shared/wire/snapshot-manifest.ts";
import type { ExportManifest, SnapshotEntry } from "../shared/wire/snapshot-manifest.ts";
import { recordRef } from "./feed-writer.ts";
import type { HubSigner } from "./feed-writer.ts";

export interface ExportDeps {
  readonly pool: Pool;
  /** Where Kafka-delivered feeds are, to name the offsets a snapshot covers (omit for S3-only partners). */
  readonly feedOffsets?: { topic: (partnerId: string) => string; highWatermarks: (topic: string) => Promise<Record<string, string>> };
  readonly s3: S3Client;
  readonly bucket: string;
  readonly hub: HubSigner;
  readonly prefix?: string;
}

interface SnapshotRow {
  alg: string;
  value: string;
  record_id: string;
  revision: number;
  category: string;
  content_type: string;
  extra: Record<string, string>;
}

interface HeadRow {
  partition: number;
  last_seq: number;
  last_digest: Buffer;
}

const stamp = (d: Date) => d.toISOString().replace(/[:.]/g, "-");

async function put(deps: ExportDeps, key: string, body: Buffer, contentType: string): Promise<void> {
  await deps.s3.send(new PutObjectCommand({ Bucket: deps.bucket, Key: key, Body: body, ContentType: contentType }));
}

export async function exportSnapshot(deps: ExportDeps, partnerId: string, now = new Date()): Promise<ExportManifest> {
  const base = `${deps.prefix ?? feedsPrefix("")}/${partnerId}`;
  // One consistent read of entries, chain heads and (for Kafka feeds) topic offsets: under the
  // distribution apply lock no feed record is issued meanwhile, and once the partner's outbox is
  // empty every issued record is on Kafka, so the high watermarks sit just after the heads.
  let attempt = 0;
  let snapshot: { entries: SnapshotRow[]; heads: HeadRow[]; kafkaOffsets: Record<string, string> | undefined } | null = null;
  while (!snapshot) {
    snapshot = await inTransaction(deps.pool, async (client) => {
      await client.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
      await client.query("SELECT pg_advisory_xact_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
      let kafkaOffsets: Record<string, string> | undefined;
      if (deps.feedOffsets) {
        const topic = deps.feedOffsets.topic(partnerId);
        const { rows: pending } = await client.query<{ n: string }>("SELECT count(*)::text AS n FROM feed_outbox WHERE topic = $1", [
          topic,
        ]);
        if (Number(pending[0]?.n) > 0) return null;
        kafkaOffsets = await deps.feedOffsets.highWatermarks(topic);
      }
      const e = await client.query<SnapshotRow>(
        "SELECT alg, value, record_id, revision, category, content_type, extra FROM feed_entries WHERE partner_id = $1 ORDER BY alg, value",
        [partnerId],
      );
      const h = await client.query<HeadRow>("SELECT partition, last_seq, last_digest FROM feed_partitions WHERE partner_id = $1", [
        partnerId,
      ]);
      return { entries: e.rows, heads: h.rows, kafkaOffsets };
    });
    if (!snapshot) {
      if (++attempt > 300) throw new Error(`feed outbox of ${partnerId} did not drain; snapshot not taken`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const { entries, heads, kafkaOffsets } = snapshot;
  const lines = entries.map((r) =>
    JSON.stringify({
      alg: r.alg,
      value: r.value,
      category: r.category,
      contentType: r.content_type,
      recordRef: recordRef(deps.hub.pseudonymSecret, partnerId, r.record_id),
      revision: r.revision,
      extra: r.extra,
    } satisfies SnapshotEntry),
  );
  const body = gzipSync(Buffer.from(lines.length ? `${lines.join("\n")}\n` : ""));
  const object = `${base}/snapshots/${stamp(now)}.jsonl.gz`;
  await put(deps, object, body, "application/gzip");
  const manifest = signManifest(
    {
      partnerId,
      kind: "snapshot",
      object,
      sha256: createHash("sha256").update(body).digest("hex"),
      count: lines.length,
      heads: Object.fromEntries(heads.map((h) => [String(h.partition), { seq: h.last_seq, digest: h.last_digest.toString("hex") }])),
      ...(kafkaOffsets ? { kafkaOffsets } : {}),
      createdAt: now.toISOString(),
      keyId: deps.hub.keyId,
    },
    deps.hub.privateKey,
  );
  const manifestKey = `${object}.manifest.json`;
  await put(deps, manifestKey, serialiseManifest(manifest), "application/json");
  await put(
    deps,
    latestSnapshotKey(deps.prefix ?? "feeds", partnerId),
    Buffer.from(JSON.stringify({ manifest: manifestKey })),
    "application/json",
  );
  await deps.pool.query(
    "INSERT INTO feed_exports (partner_id, kind, object_key, manifest_key, covers) VALUES ($1, 'snapshot', $2, $3, $4)",
    [partnerId, object, manifestKey, JSON.stringify(manifest.heads)],
  );
  return manifest;
}

/** Exports the feed records issued since the previous delta (S3-delivery partners), then prunes them. */
export async function exportDelta(deps: ExportDeps, partnerId: string, now = new Date()): Promise<ExportManifest | null> {
  const base = `${deps.prefix ?? feedsPrefix("")}/${partnerId}`;
  const { rows } = await deps.pool.query<{ partition: number; seq: number; body: Buffer }>(
    "SELECT partition, seq, body FROM feed_log WHERE partner_id = $1 ORDER BY partition, seq",
    [partnerId],
  );
  if (rows.length === 0) return null;
  const body = gzipSync(Buffer.from(`${rows.map((r) => JSON.stringify({ record: r.body.toString("base64") })).join("\n")}\n`));
  const heads: Record<string, { seq: number; digest: string }> = {};
  const from: Record<string, number> = {};
  for (const r of rows) {
    const p = String(r.partition);
    from[p] = Math.min(from[p] ?? r.seq, r.seq);
    heads[p] = { seq: r.seq, digest: createHash("sha256").update(r.body).digest("hex") };
  }
  const object = `${base}/deltas/${stamp(now)}.jsonl.gz`;
  await put(deps, object, body, "application/gzip");
  const manifest = signManifest(
    {
      partnerId,
      kind: "delta",
      object,
      sha256: createHash("sha256").update(body).digest("hex"),
      count: rows.length,
      heads,
      from,
      createdAt: now.toISOString(),
      keyId: deps.hub.keyId,
    },
    deps.hub.privateKey,
  );
  const manifestKey = `${object}.manifest.json`;
  await put(deps, manifestKey, serialiseManifest(manifest), "application/json");
  await inTransaction(deps.pool, async (client) => {
    await client.query("INSERT INTO feed_exports (partner_id, kind, object_key, manifest_key, covers) VALUES ($1, 'delta', $2, $3, $4)", [
      partnerId,
      object,
      manifestKey,
      JSON.stringify(heads),
    ]);
    for (const [p, h] of Object.entries(heads)) {
      await client.query("DELETE FROM feed_log WHERE partner_id = $1 AND partition = $2 AND seq <= $3", [partnerId, Number(p), h.seq]);
    }
  });
  return manifest;
}
