/**
 * Does the local S3 (s3proxy) work with @aws-sdk/client-s3 as hashrelay uses it? Creates a scratch
 * bucket, puts (a buffer and a stream, with the SDK's default checksums), gets, lists (with a
 * prefix), deletes; checks the stack's own bucket exists.
 * Exits non-zero on any failure. Run: node infra/probe-s3.ts   (settings from S3_* or .stack/env)
 */
import { readFileSync, existsSync } from "node:fs";
import { Readable } from "node:stream";
import {
  S3Client,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";

function stackEnv(): Record<string, string> {
  const file = new URL("../.stack/env", import.meta.url);
  const env: Record<string, string> = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const i = line.indexOf("=");
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return env;
}

const fileEnv = stackEnv();
const get = (name: string, fallback: string): string => process.env[name] ?? fileEnv[name] ?? fallback;
const endpoint = get("S3_ENDPOINT", "http://127.0.0.1:19000");
const stackBucket = get("S3_BUCKET", "hashrelay");
const s3 = new S3Client({
  endpoint,
  region: get("S3_REGION", "us-east-1"),
  forcePathStyle: true,
  credentials: {
    accessKeyId: get("S3_ACCESS_KEY_ID", "hashrelay-local"),
    secretAccessKey: get("S3_SECRET_ACCESS_KEY", "hashrelay-local-secret"),
  },
});

async function main(): Promise<void> {
  const bucket = `probe-${Date.now()}`;
  await s3.send(new HeadBucketCommand({ Bucket: stackBucket }));
  console.log(`bucket ${stackBucket} exists at ${endpoint}`);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const body = JSON.stringify({ synthetic: true, digest: "0".repeat(64) });
  const keys = ["feeds/p1/delta-000001.json", "feeds/p1/delta-000002.json", "other/x.json"];
  for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: body, ContentType: "application/json" }));
  // a stream body, as the SDK sends it (aws-chunked with a trailing checksum)
  const streamKey = "feeds/p2/snapshot.ndjson";
  const lines = Array.from({ length: 2000 }, (_, i) => `{"seq":${i},"value":"${i.toString(16).padStart(64, "0")}"}\n`);
  const streamBody = lines.join("");
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: streamKey,
      Body: Readable.from(lines.map((l) => Buffer.from(l))),
      ContentLength: Buffer.byteLength(streamBody),
    }),
  );
  const streamed = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: streamKey }))).Body?.transformToString();
  if (streamed !== streamBody) throw new Error(`streamed object came back with ${streamed?.length ?? 0} of ${streamBody.length} bytes`);
  keys.push(streamKey);
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: keys[0] }));
  const text = await got.Body?.transformToString();
  if (text !== body) throw new Error(`get returned ${text?.length ?? 0} bytes that differ from what was put`);
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "feeds/p1/" }));
  const names = (listed.Contents ?? []).map((o) => o.Key).sort();
  if (names.join() !== keys.slice(0, 2).join()) throw new Error(`list with prefix returned ${names.join()}`);
  for (const Key of keys) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  console.log("create bucket, put (buffer and stream), get, list (prefix), delete: ok");
  console.log("S3 PROBE OK");
}

main().catch((err: unknown) => {
  console.error(`S3 PROBE FAILED: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  process.exit(1);
});
