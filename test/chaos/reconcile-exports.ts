/**
 * The chaos run's check of S3 delivery, which every distribution instance runs on a timer through
 * the faults, made from outside: what the bucket holds under the run's prefix against the feed
 * topic and the hub database. Every count of differences must be zero:
 *   - every manifest is signed by the hub key and names its object's SHA-256 and line count (no
 *     torn export), and latest-snapshot.json names one of them;
 *   - no (partition, seq) is in two deltas recorded in feed_exports (no duplicate export); a delta
 *     whose round failed after its manifest was written is not recorded, and the next one carries
 *     its records again, which is allowed;
 *   - every delta record is byte for byte the feed topic's record at its seq;
 *   - for each feed partition, the deltas and what feed_log still holds cover seq 1 to the head.
 * The instances go on exporting while it reads, so the reads come in an order that no export can
 * fall between: the chain heads and feed_log first, in one snapshot, then the latest-snapshot
 * pointer, then the listing. A delta writes its manifest before the transaction that prunes its
 * records from feed_log commits, and a snapshot its manifest before the pointer, so a record gone
 * from that feed_log is in a manifest listed after it, and the pointer names one. Read the other
 * way round, a delta committed between the listing and the feed_log read looked like lost records.
 */
import { createHash, createPublicKey } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { feedsPrefix, latestSnapshotKey, manifestSignatureValid } from "../../services/shared/wire/snapshot-manifest.ts";
import type { ExportManifest } from "../../services/shared/wire/snapshot-manifest.ts";
import type { ChaosHub } from "./hub.ts";

const codec = new AvroCodec();

export interface ExportStore {
  readonly s3: S3Client;
  readonly bucket: string;
}

/** What the check reads of the run's hub: its database, key, namespace and S3-delivered partners. */
export type ExportsHub = Pick<ChaosHub, "hub" | "hubKey" | "namespace" | "policies">;

/** A partner's feed topic read to its end: each record's bytes. */
export type FeedTopicReader = (partnerId: string) => Promise<readonly Buffer[]>;

type Differ = (check: string, items: readonly string[]) => void;

async function get(store: ExportStore, key: string): Promise<Buffer> {
  const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function keysUnder(store: ExportStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const res = await store.s3.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of res.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

export async function checkExports(
  h: ExportsHub,
  store: ExportStore,
  feedTopic: FeedTopicReader,
  figures: Record<string, number>,
  differ: Differ,
): Promise<void> {
  const hubKey = createPublicKey(h.hubKey.privateKey);
  const prefix = feedsPrefix(h.namespace);
  for (const policy of h.policies.filter((p) => p.delivery !== "kafka")) {
    const partnerId = policy.partnerId;
    const { heads, unexported } = await feedLogAndHeads(h.hub, partnerId);
    const pointer = await get(store, latestSnapshotKey(prefix, partnerId)).catch(() => null);
    const torn: string[] = [];
    const manifests = new Map<string, ExportManifest>();
    const manifestKeys = async () => (await keysUnder(store, `${prefix}/${partnerId}/`)).filter((k) => k.endsWith(".manifest.json"));
    for (const key of await manifestKeys()) {
      const m = JSON.parse((await get(store, key)).toString()) as ExportManifest;
      manifests.set(key, m);
      if (!manifestSignatureValid(m, hubKey)) torn.push(`${key}: signature`);
      const body = await get(store, m.object).catch(() => null);
      if (!body) {
        torn.push(`${key}: object ${m.object} missing`);
        continue;
      }
      if (createHash("sha256").update(body).digest("hex") !== m.sha256) torn.push(`${key}: SHA-256 of ${m.object}`);
      else if (gunzipSync(body).toString().split("\n").filter(Boolean).length !== m.count) torn.push(`${key}: count`);
    }
    // A snapshot of a Kafka feed waits for the feed outbox to drain, which broker faults can stop for
    // longer than it waits: a run may end without one, but a pointer must name a snapshot written.
    const latest = pointer ? (JSON.parse(pointer.toString()) as { manifest: string }).manifest : null;
    const snapshots = [...manifests.values()].filter((m) => m.kind === "snapshot").length;
    if (latest ? manifests.get(latest)?.kind !== "snapshot" : snapshots > 0) torn.push(`latest-snapshot.json names ${latest ?? "nothing"}`);
    differ(`${partnerId} S3 export torn or unsigned`, torn);

    const onTopic = new Map<string, Buffer>();
    for (const bytes of await feedTopic(partnerId)) {
      const r = codec.decode("FeedRecord", bytes).value;
      onTopic.set(`${r.partition}:${r.seq}`, bytes);
    }
    const recorded = new Set(
      (
        await h.hub.query<{ manifest_key: string }>("SELECT manifest_key FROM feed_exports WHERE partner_id = $1 AND kind = 'delta'", [
          partnerId,
        ])
      ).rows.map((r) => r.manifest_key),
    );
    const inRecorded = new Map<string, number>();
    const exported = new Set<string>();
    const mismatched: string[] = [];
    let deltas = 0;
    let repeated = 0;
    for (const [key, m] of manifests) {
      if (m.kind !== "delta") continue;
      deltas++;
      const lines = gunzipSync(await get(store, m.object))
        .toString()
        .split("\n")
        .filter(Boolean);
      for (const line of lines) {
        const bytes = Buffer.from((JSON.parse(line) as { record: string }).record, "base64");
        const r = codec.decode("FeedRecord", bytes).value;
        const at = `${r.partition}:${r.seq}`;
        if (exported.has(at)) repeated++;
        exported.add(at);
        if (recorded.has(key)) inRecorded.set(at, (inRecorded.get(at) ?? 0) + 1);
        if (!onTopic.get(at)?.equals(bytes)) mismatched.push(`${at} in ${m.object}`);
      }
    }
    differ(
      `${partnerId} record in two recorded deltas`,
      [...inRecorded].filter(([, n]) => n > 1).map(([at, n]) => `${at} ×${n}`),
    );
    differ(`${partnerId} delta record not the topic's`, mismatched);
    const covered = new Set([...exported, ...unexported]);
    const gaps: string[] = [];
    for (const { partition, last_seq } of heads) {
      for (let seq = 1; seq <= Number(last_seq); seq++) {
        if (!covered.has(`${partition}:${seq}`)) {
          gaps.push(`${partition}:${seq}`);
          break;
        }
      }
    }
    differ(`${partnerId} seq in no delta and not waiting for one`, gaps);
    figures[`${partnerId} S3 deltas written`] = deltas;
    figures[`${partnerId} S3 deltas recorded in feed_exports`] = [...manifests.keys()].filter((k) => recorded.has(k)).length;
    figures[`${partnerId} S3 snapshots`] = snapshots;
    figures[`${partnerId} records in S3 deltas`] = exported.size;
    figures[`${partnerId} records carried again after a failed export`] = repeated;
    figures[`${partnerId} records waiting for the next delta`] = unexported.length;
    // Exports the instances wrote meanwhile, and the records their deltas took out of feed_log after it was read.
    const meanwhile = (await manifestKeys()).filter((k) => !manifests.has(k));
    const late = await Promise.all(meanwhile.map(async (k) => JSON.parse((await get(store, k)).toString()) as ExportManifest));
    figures[`${partnerId} S3 exports written while this check read`] = meanwhile.length;
    figures[`${partnerId} records in deltas written while this check read`] = late.reduce(
      (n, m) => n + (m.kind === "delta" ? m.count : 0),
      0,
    );
  }
}

/**
 * A partner's chain heads and the feed records waiting in feed_log ("partition:seq"), read in one
 * snapshot: a record issued up to a head read is in feed_log or was pruned before the snapshot.
 */
async function feedLogAndHeads(
  pool: ExportsHub["hub"],
  partnerId: string,
): Promise<{ heads: { partition: number; last_seq: string }[]; unexported: string[] }> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const heads = await client.query<{ partition: number; last_seq: string }>(
      "SELECT partition, last_seq::text FROM feed_partitions WHERE partner_id = $1",
      [partnerId],
    );
    const log = await client.query<{ partition: number; seq: string }>("SELECT partition, seq::text FROM feed_log WHERE partner_id = $1", [
      partnerId,
    ]);
    await client.query("COMMIT");
    return { heads: heads.rows, unexported: log.rows.map((r) => `${r.partition}:${r.seq}`) };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
