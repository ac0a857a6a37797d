/**
 * A new partner starts from the hub's latest signed snapshot in S3: the manifest's signature
 * and the object's SHA-256 are checked, the entries loaded, and each feed partition's chain head
 * set from the manifest, so tailing the Kafka topic continues exactly after the snapshot (older
 * records are recognised by seq and skipped).
 *
 * A snapshot holds every hash the partner is entitled to, so it is streamed, never held whole: the
 * object is read once to check its SHA-256 before anything in it is parsed, then again to load it a
 * slice at a time in one transaction, hashed again on the way; if it changed in between, the load is
 * rolled back.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";
import { createGunzip } from "node:zlib";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { SignatureError } from "../shared/errors.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import { latestSnapshotKey, manifestSignatureValid } from "../shared/wire/snapshot-manifest.ts";
import type { ExportManifest, SnapshotEntry } from "../shared/wire/snapshot-manifest.ts";
import type { TrustedHubKey } from "./verifier.ts";

async function getObject(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function objectStream(s3: S3Client, bucket: string, key: string): Promise<Readable> {
  return (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body as Readable;
}

/** Entries inserted per statement. */
const SLICE = 1000;
/** A snapshot line is one entry of a few hundred bytes; a longer one means a broken object. */
const MAX_LINE_CHARS = 64 * 1024;

async function sha256Of(stream: Readable): Promise<string> {
  const digest = createHash("sha256");
  for await (const chunk of stream) digest.update(chunk as Buffer);
  return digest.digest("hex");
}

/** Passes the bytes through, adding them to `digest`. */
function hashing(digest: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      digest.update(chunk);
      done(null, chunk);
    },
  });
}

async function insertEntries(client: PoolClient, slice: readonly SnapshotEntry[]): Promise<void> {
  await client.query(
    `INSERT INTO partner_hashes (alg, value, category, content_type, record_ref, revision, extra)
     SELECT a, v, c, ct, r, rev, e::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) AS t(a, v, c, ct, r, rev, e)
     ON CONFLICT (alg, value) DO NOTHING`,
    [
      slice.map((e) => e.alg),
      slice.map((e) => e.value),
      slice.map((e) => e.category),
      slice.map((e) => e.contentType),
      slice.map((e) => e.recordRef),
      slice.map((e) => e.revision),
      slice.map((e) => JSON.stringify(e.extra)),
    ],
  );
}

/** Inserts the entries of a gzip JSON Lines stream, a slice at a time; returns how many lines it held. */
async function loadEntries(client: PoolClient, gzipped: Readable, digest: Hash): Promise<number> {
  let lines = 0;
  let slice: SnapshotEntry[] = [];
  const take = async (text: string, last: boolean): Promise<string> => {
    const parts = text.split("\n");
    const rest = last ? "" : (parts.pop() ?? "");
    if (rest.length > MAX_LINE_CHARS) throw new Error(`snapshot line ${lines + 1} is longer than ${MAX_LINE_CHARS} characters`);
    for (const line of parts) {
      if (!line) continue;
      slice.push(JSON.parse(line) as SnapshotEntry);
      lines++;
      if (slice.length >= SLICE) {
        await insertEntries(client, slice);
        slice = [];
      }
    }
    return rest;
  };
  await pipeline(gzipped, hashing(digest), createGunzip(), async (text: AsyncIterable<Buffer>) => {
    const decoder = new StringDecoder("utf8");
    let rest = "";
    for await (const chunk of text) rest = await take(rest + decoder.write(chunk), false);
    await take(rest + decoder.end(), true);
  });
  if (slice.length) await insertEntries(client, slice);
  return lines;
}

export interface BootstrapResult {
  readonly manifest: string;
  readonly entries: number;
}

/** Loads the latest snapshot if this partner database is empty; returns null when nothing was needed. */
export async function bootstrapFromSnapshot(deps: {
  pool: Pool;
  s3: S3Client;
  bucket: string;
  prefix: string;
  partnerId: string;
  keys: readonly TrustedHubKey[];
  consumerGroup: string;
  topic: string;
}): Promise<BootstrapResult | null> {
  const { rows } = await deps.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM feed_state");
  if ((rows[0]?.n ?? 0) > 0) return null;
  let pointer: { manifest: string };
  try {
    pointer = JSON.parse((await getObject(deps.s3, deps.bucket, latestSnapshotKey(deps.prefix, deps.partnerId))).toString()) as {
      manifest: string;
    };
  } catch {
    return null; // no snapshot yet: start from the beginning of the topic
  }
  const manifest = JSON.parse((await getObject(deps.s3, deps.bucket, pointer.manifest)).toString()) as ExportManifest;
  const key = deps.keys.find((k) => k.keyId === manifest.keyId);
  if (!key || !manifestSignatureValid(manifest, key.publicKey) || manifest.partnerId !== deps.partnerId) {
    throw new SignatureError(
      "BAD_SIGNATURE",
      `snapshot manifest ${pointer.manifest} is not signed by a trusted hub key for ${deps.partnerId}`,
    );
  }
  if ((await sha256Of(await objectStream(deps.s3, deps.bucket, manifest.object))) !== manifest.sha256) {
    throw new SignatureError("BAD_SIGNATURE", `snapshot ${manifest.object} does not match its manifest digest`);
  }
  const entries = await inTransaction(deps.pool, async (client) => {
    const digest = createHash("sha256");
    const loaded = await loadEntries(client, await objectStream(deps.s3, deps.bucket, manifest.object), digest);
    if (digest.digest("hex") !== manifest.sha256) {
      throw new SignatureError("BAD_SIGNATURE", `snapshot ${manifest.object} changed while it was loaded; nothing was kept`);
    }
    // Start tailing where the snapshot ends: the consumer seeks to stored offsets on assignment.
    for (const [partition, offset] of Object.entries(manifest.kafkaOffsets ?? {})) {
      await client.query(
        `INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
         ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`,
        [deps.consumerGroup, deps.topic, Number(partition), Number(offset)],
      );
    }
    for (const [partition, head] of Object.entries(manifest.heads)) {
      await client.query("INSERT INTO feed_state (partition, last_seq, last_digest, bootstrap_seq) VALUES ($1, $2, $3, $2)", [
        Number(partition),
        head.seq,
        Buffer.from(head.digest, "hex"),
      ]);
    }
    return loaded;
  });
  return { manifest: pointer.manifest, entries };
}
