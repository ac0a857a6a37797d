/**
 * S3 delivery: full snapshots (what a partner holds now, with the chain head of every feed
 * partition) and deltas (the signed feed records issued since the last delta), each gzip JSON
 * Lines with a manifest signed by the hub key naming the object's SHA-256 and the seq ranges it
 * covers. feeds/<partner>/latest-snapshot.json points at the newest snapshot manifest, which is
 * where a new partner sink bootstraps before tailing its Kafka topic. The manifest format and its
 * signed bytes are the contract in services/shared/wire/snapshot-manifest.ts.
 */
import { createHash } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { DISTRIBUTION_APPLY_LOCK } from "../shared/advisory-locks.ts";
import { cursorPages, inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import { feedsPrefix, latestSnapshotKey, serialiseManifest, signManifest } from "../shared/wire/snapshot-manifest.ts";
import type { ExportManifest, SnapshotEntry } from "../shared/wire/snapshot-manifest.ts";
import { uploadGzipLines } from "./export-object.ts";
import type { WrittenObject } from "./export-object.ts";
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

/** Rows an export reads per round trip while it streams its object. */
const EXPORT_PAGE_ROWS = 2_000;
/** How long a snapshot waits for the partner's feed outbox to drain (tries, 100 ms apart). */
const OUTBOX_DRAIN_TRIES = 300;

export async function exportSnapshot(deps: ExportDeps, partnerId: string, now = new Date()): Promise<ExportManifest> {
  const base = `${deps.prefix ?? feedsPrefix("")}/${partnerId}`;
  const object = `${base}/snapshots/${stamp(now)}.jsonl.gz`;
  const client = await deps.pool.connect();
  let failed = false;
  let point: SnapshotPoint;
  let written: WrittenObject;
  try {
    point = await openSnapshot(deps, client, partnerId);
    const entries = cursorPages<SnapshotRow>(
      client,
      "SELECT alg, value, record_id, revision, category, content_type, extra FROM feed_entries WHERE partner_id = $1 ORDER BY alg, value",
      [partnerId],
      EXPORT_PAGE_ROWS,
    );
    written = await uploadGzipLines(deps.s3, deps.bucket, object, snapshotLines(entries, deps.hub, partnerId));
    await client.query("COMMIT");
  } catch (err) {
    failed = true;
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    // A failed connection is closed rather than reused: that also drops the apply lock if it was still held.
    client.release(failed);
  }
  const { heads, kafkaOffsets } = point;
  const manifest = signManifest(
    {
      partnerId,
      kind: "snapshot",
      object,
      sha256: written.sha256,
      count: written.count,
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

/** Where a snapshot stands: the chain heads it covers and, for a Kafka feed, the offsets just after them. */
interface SnapshotPoint {
  readonly heads: HeadRow[];
  readonly kafkaOffsets: Record<string, string> | undefined;
}

/**
 * Opens, on `client`, the repeatable-read transaction a snapshot is read in, at a moment when every
 * feed record issued is in the heads it reads and (Kafka feeds) on the topic: the session holds the
 * distribution apply lock from before the transaction takes its snapshot until the heads and the
 * topic's high watermarks are read, so no apply is half done or starts meanwhile, and the partner's
 * outbox must be empty. Then it lets the lock go: applying carries on while the entries are read
 * from the transaction's snapshot and uploaded. Leaves the transaction open; waits for the outbox.
 */
async function openSnapshot(deps: ExportDeps, client: PoolClient, partnerId: string): Promise<SnapshotPoint> {
  for (let attempt = 1; ; attempt++) {
    await client.query("SELECT pg_advisory_lock($1)", [DISTRIBUTION_APPLY_LOCK]);
    let point: SnapshotPoint | null = null;
    try {
      // The transaction's snapshot is taken by its first statement, below: after the lock is held.
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      let kafkaOffsets: Record<string, string> | undefined;
      if (deps.feedOffsets) {
        const topic = deps.feedOffsets.topic(partnerId);
        const { rows: pending } = await client.query<{ n: string }>("SELECT count(*)::text AS n FROM feed_outbox WHERE topic = $1", [
          topic,
        ]);
        if (Number(pending[0]?.n) === 0) kafkaOffsets = await deps.feedOffsets.highWatermarks(topic);
      }
      if (!deps.feedOffsets || kafkaOffsets) {
        const h = await client.query<HeadRow>("SELECT partition, last_seq, last_digest FROM feed_partitions WHERE partner_id = $1", [
          partnerId,
        ]);
        point = { heads: h.rows, kafkaOffsets };
      } else {
        await client.query("ROLLBACK");
      }
    } finally {
      // Fails only after an error, which exportSnapshot answers by closing the connection (and the lock with it).
      await client.query("SELECT pg_advisory_unlock($1)", [DISTRIBUTION_APPLY_LOCK]).catch(() => undefined);
    }
    if (point) return point;
    if (attempt >= OUTBOX_DRAIN_TRIES) throw new Error(`feed outbox of ${partnerId} did not drain; snapshot not taken`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Snapshot lines (SnapshotEntry), a page of entries at a time. */
async function* snapshotLines(pages: AsyncIterable<SnapshotRow[]>, hub: HubSigner, partnerId: string): AsyncGenerator<string[]> {
  for await (const rows of pages) {
    yield rows.map((r) =>
      JSON.stringify({
        alg: r.alg,
        value: r.value,
        category: r.category,
        contentType: r.content_type,
        recordRef: recordRef(hub.pseudonymSecret, partnerId, r.record_id),
        revision: r.revision,
        extra: r.extra,
      } satisfies SnapshotEntry),
    );
  }
}

interface LogRow {
  partition: number;
  seq: number;
  body: Buffer;
}

/**
 * Exports the feed records issued since the previous delta (S3-delivery partners), then prunes them.
 * The records are read a page at a time from one transaction's snapshot while the object uploads;
 * records issued meanwhile wait for the next delta. The rows are read FOR UPDATE, and the same
 * transaction records the delta and prunes them once its manifest is written: a delta running at
 * the same time (another instance whose export lock was lost) waits for them, then finds them gone,
 * so no record is in two deltas. A delta whose transaction fails after its manifest was written
 * leaves its rows, and the next delta carries them again. Pruning up to each partition's last seq
 * read removes only rows read: a partition's records commit in seq order, since every round that
 * issues them holds the apply lock and row-locks the chain heads (store.ts loadRound).
 */
export async function exportDelta(deps: ExportDeps, partnerId: string, now = new Date()): Promise<ExportManifest | null> {
  const base = `${deps.prefix ?? feedsPrefix("")}/${partnerId}`;
  const object = `${base}/deltas/${stamp(now)}.jsonl.gz`;
  const heads: Record<string, { seq: number; digest: string }> = {};
  const from: Record<string, number> = {};
  return inTransaction(deps.pool, async (client): Promise<ExportManifest | null> => {
    const pages = cursorPages<LogRow>(
      client,
      "SELECT partition, seq, body FROM feed_log WHERE partner_id = $1 ORDER BY partition, seq FOR UPDATE",
      [partnerId],
      EXPORT_PAGE_ROWS,
    )[Symbol.asyncIterator]();
    const first = await pages.next();
    if (first.done) return null;
    async function* lines(): AsyncGenerator<string[]> {
      try {
        for (let page = first; !page.done; page = await pages.next()) {
          yield page.value.map((r) => {
            const p = String(r.partition);
            from[p] = Math.min(from[p] ?? r.seq, r.seq);
            heads[p] = { seq: r.seq, digest: createHash("sha256").update(r.body).digest("hex") };
            return JSON.stringify({ record: r.body.toString("base64") });
          });
        }
      } finally {
        await pages.return?.(undefined); // closes the cursor when the upload stops early
      }
    }
    const written = await uploadGzipLines(deps.s3, deps.bucket, object, lines());
    const manifest = signManifest(
      {
        partnerId,
        kind: "delta",
        object,
        sha256: written.sha256,
        count: written.count,
        heads,
        from,
        createdAt: now.toISOString(),
        keyId: deps.hub.keyId,
      },
      deps.hub.privateKey,
    );
    const manifestKey = `${object}.manifest.json`;
    await put(deps, manifestKey, serialiseManifest(manifest), "application/json");
    await client.query("INSERT INTO feed_exports (partner_id, kind, object_key, manifest_key, covers) VALUES ($1, 'delta', $2, $3, $4)", [
      partnerId,
      object,
      manifestKey,
      JSON.stringify(heads),
    ]);
    for (const [p, h] of Object.entries(heads)) {
      await client.query("DELETE FROM feed_log WHERE partner_id = $1 AND partition = $2 AND seq <= $3", [partnerId, Number(p), h.seq]);
    }
    return manifest;
  });
}
