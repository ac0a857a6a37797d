/**
 * Writes one S3 feed object of exports.ts as it is produced: JSON Lines, gzip, the SHA-256 of the
 * gzip bytes (what the manifest signs) taken on the way, and an upload in parts, so an export of
 * any size holds a part or two in memory rather than the whole object. A failure anywhere stops
 * the rest (the lines' source is closed, the unfinished upload aborted) and nothing is left at the key.
 */
import { createHash } from "node:crypto";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import type { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

export interface WrittenObject {
  /** SHA-256 of the object's bytes (hex). */
  readonly sha256: string;
  /** Lines written. */
  readonly count: number;
}

/** Writes each line of `pages` (lines without their break, a page at a time) to a gzip object at `key`. */
export async function uploadGzipLines(
  s3: S3Client,
  bucket: string,
  key: string,
  pages: AsyncIterable<readonly string[]>,
): Promise<WrittenObject> {
  let count = 0;
  async function* text(): AsyncGenerator<string> {
    for await (const lines of pages) {
      if (lines.length === 0) continue;
      count += lines.length;
      yield `${lines.join("\n")}\n`;
    }
  }
  const digest = createHash("sha256");
  const hashed = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      digest.update(chunk);
      done(null, chunk);
    },
  });
  const body = new PassThrough();
  // queueSize 1: one part uploading while the next one fills.
  const upload = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: key, Body: body, ContentType: "application/gzip" },
    queueSize: 1,
  });
  const uploaded = upload.done().catch((err: unknown) => {
    body.destroy(err as Error); // stops the producing side, which would otherwise wait on a body nobody reads
    throw err;
  });
  await Promise.all([pipeline(Readable.from(text()), createGzip(), hashed, body), uploaded]);
  return { sha256: digest.digest("hex"), count };
}
