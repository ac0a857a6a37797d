/**
 * The force CLI's S3 upload (s3PutLines) against the local stack's S3: a multipart upload of JSON
 * Lines, with the client's default part checksums, reads back byte for byte; a small one is a
 * single object.
 */
import { randomUUID } from "node:crypto";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { s3PutLines } from "../../services/force-cli/s3-upload.ts";
import { randomHex } from "../support/fixtures.ts";
import { stackEnv, stackS3Client } from "../support/stack.ts";

const env = stackEnv();
const s3 = stackS3Client(env.s3);
const keys: string[] = [];
afterAll(async () => {
  for (const key of keys) await s3.send(new DeleteObjectCommand({ Bucket: env.s3.bucket, Key: key }));
});

function jsonLines(bytes: number): string[] {
  const out: string[] = [];
  for (let total = 0; total < bytes; ) {
    const line = `${JSON.stringify({ submissionId: `force-a:upload:${out.length}`, md5: randomHex(16), series: "séries ✓" })}\n`;
    out.push(line);
    total += Buffer.byteLength(line);
  }
  return out;
}

async function* each(lines: string[]) {
  yield* lines;
}

async function upload(lines: string[]): Promise<string> {
  const key = `imports/force-a/upload-test-${randomUUID()}.jsonl`;
  keys.push(key);
  await s3PutLines(s3, env.s3.bucket, { partBytes: 5 * 1024 * 1024 })(key, each(lines));
  const got = await s3.send(new GetObjectCommand({ Bucket: env.s3.bucket, Key: key }));
  return (await got.Body?.transformToString("utf8")) ?? "";
}

describe("force CLI upload to S3", () => {
  it("uploads JSON Lines larger than a part as a multipart object that reads back whole", async () => {
    const lines = jsonLines(11 * 1024 * 1024);
    expect(await upload(lines)).toBe(lines.join(""));
  });

  it("uploads a small body as one object", async () => {
    const lines = jsonLines(2000);
    expect(await upload(lines)).toBe(lines.join(""));
  });
});
