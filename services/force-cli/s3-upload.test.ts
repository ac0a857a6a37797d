/**
 * s3PutLines against a fake S3 client: the object is the lines in order (a multi-byte character
 * split across two parts included), every part but the last is full, no more than `parts` part
 * buffers are ever allocated, a small body is one PutObject, and a failure of S3 or of the lines
 * aborts the multipart upload instead of completing it.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { s3PutLines } from "./s3-upload.ts";

const MiB = 1024 * 1024;
const PART = 5 * MiB;

interface Sent {
  readonly command: string;
  readonly input: Record<string, unknown>;
  /** A copy of the body: the uploader reuses its part buffers. */
  readonly body?: Buffer;
}

function fakeS3(opts: { failPart?: number } = {}) {
  const sent: Sent[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let inFlight = 0;
  let maxInFlight = 0;
  const client = {
    config: { requestChecksumCalculation: async () => "WHEN_SUPPORTED" },
    async send(cmd: { constructor: { name: string }; input: Record<string, unknown> }) {
      const command = cmd.constructor.name;
      const body = cmd.input["Body"];
      if (Buffer.isBuffer(body)) buffers.add(body.buffer);
      sent.push({ command, input: cmd.input, ...(Buffer.isBuffer(body) ? { body: Buffer.from(body) } : {}) });
      if (command === "CreateMultipartUploadCommand") return { UploadId: "up-1" };
      if (command !== "UploadPartCommand") return {};
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      const n = cmd.input["PartNumber"] as number;
      if (n === opts.failPart) throw new Error(`part ${n} refused`);
      return { ETag: `"etag-${n}"`, ChecksumCRC32: `crc-${n}` };
    },
  };
  return { client: client as unknown as S3Client, sent, buffers, maxInFlight: () => maxInFlight };
}

async function* linesOf(lines: string[]) {
  for (const line of lines) yield line;
}

/** About `bytes` of JSON Lines, ASCII but for a "é" every line (so some cross a part boundary mid-character). */
function lines(bytes: number): string[] {
  const out: string[] = [];
  for (let total = 0, i = 0; total < bytes; i++) {
    const line = `${JSON.stringify({ submissionId: `force-a:file:${i}`, series: "séries", pad: "x".repeat(i % 700) })}\n`;
    out.push(line);
    total += Buffer.byteLength(line);
  }
  return out;
}

describe("s3PutLines", () => {
  it("uploads the lines as full parts and a last one, holding no more than its part buffers", async () => {
    const s3 = fakeS3();
    const body = lines(3.5 * PART);
    await s3PutLines(s3.client, "b", { partBytes: PART, parts: 2 })("imports/force-a/x.jsonl", linesOf(body));
    expect(s3.sent.map((s) => s.command)).toEqual([
      "CreateMultipartUploadCommand",
      "UploadPartCommand",
      "UploadPartCommand",
      "UploadPartCommand",
      "UploadPartCommand",
      "CompleteMultipartUploadCommand",
    ]);
    expect(s3.sent[0]?.input).toMatchObject({ Bucket: "b", Key: "imports/force-a/x.jsonl", ChecksumAlgorithm: "CRC32" });
    const parts = s3.sent.filter((s) => s.command === "UploadPartCommand");
    expect(parts.map((p) => p.input["PartNumber"])).toEqual([1, 2, 3, 4]);
    expect(parts.slice(0, 3).map((p) => p.body?.length)).toEqual([PART, PART, PART]);
    expect(Buffer.concat(parts.map((p) => p.body as Buffer)).toString("utf8")).toBe(body.join(""));
    expect(s3.sent[5]?.input["MultipartUpload"]).toEqual({
      Parts: [1, 2, 3, 4].map((n) => ({ PartNumber: n, ETag: `"etag-${n}"`, ChecksumCRC32: `crc-${n}` })),
    });
    expect(s3.buffers.size).toBe(2);
    expect(s3.maxInFlight()).toBeGreaterThanOrEqual(1);
  });

  it("puts a body smaller than a part, or an empty one, as one object", async () => {
    for (const body of [lines(1000), []]) {
      const s3 = fakeS3();
      await s3PutLines(s3.client, "b", { partBytes: PART })("k", linesOf(body));
      expect(s3.sent.map((s) => s.command)).toEqual(["PutObjectCommand"]);
      expect(s3.sent[0]?.input).toMatchObject({ Bucket: "b", Key: "k", ContentType: "application/x-ndjson" });
      expect(s3.sent[0]?.body?.toString("utf8")).toBe(body.join(""));
    }
  });

  it("aborts the multipart upload when a part fails, and reports that failure", async () => {
    const s3 = fakeS3({ failPart: 2 });
    const put = s3PutLines(s3.client, "b", { partBytes: PART, parts: 2 });
    await expect(put("k", linesOf(lines(4.5 * PART)))).rejects.toThrow("part 2 refused");
    const commands = s3.sent.map((s) => s.command);
    expect(commands).not.toContain("CompleteMultipartUploadCommand");
    expect(commands[commands.length - 1]).toBe("AbortMultipartUploadCommand");
  });

  it("aborts the multipart upload when the lines fail (the file cannot be read)", async () => {
    const s3 = fakeS3();
    async function* failing() {
      yield* linesOf(lines(1.5 * PART));
      throw new Error("EIO: read failed");
    }
    await expect(s3PutLines(s3.client, "b", { partBytes: PART })("k", failing())).rejects.toThrow("EIO");
    const commands = s3.sent.map((s) => s.command);
    expect(commands).toEqual(["CreateMultipartUploadCommand", "UploadPartCommand", "AbortMultipartUploadCommand"]);
  });

  it("refuses parts smaller than S3 takes", () => {
    expect(() => s3PutLines(fakeS3().client, "b", { partBytes: 1024 })).toThrow(/bytes per part/);
  });
});
