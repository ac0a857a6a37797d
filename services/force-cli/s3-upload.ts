/**
 * The force CLI's upload of signed JSON Lines to the hub bucket, in fixed memory whatever the
 * file's size: lines are encoded straight into part buffers allocated once (`parts` of `partBytes`
 * each), so one part uploads while the next fills, and no other copy of the object is held. An
 * object that fits in one part is one PutObject; a larger one is a multipart upload, aborted on any
 * failure (of S3 or of the lines) so that no partial object is left under the key.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { CompletedPart, S3Client } from "@aws-sdk/client-s3";

export interface LinesUploadOptions {
  /** Bytes per part, at least S3's 5 MiB minimum for any part but the last (the default). */
  readonly partBytes?: number;
  /** Part buffers in memory: one fills while the others upload. Default 2. */
  readonly parts?: number;
}

/** Stores the JSON Lines of a file under a key: what uploadFile (send.ts) takes as `put`. */
export type PutLines = (key: string, lines: AsyncIterable<string>) => Promise<void>;

const CONTENT_TYPE = "application/x-ndjson";
const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000; // S3's limit: 48.8 GiB of JSON Lines at the default part size

/** A PutLines that writes to `bucket` through `s3` (see the module comment). */
export function s3PutLines(s3: S3Client, bucket: string, options: LinesUploadOptions = {}): PutLines {
  const partBytes = options.partBytes ?? MIN_PART_BYTES;
  const parts = options.parts ?? 2;
  if (partBytes < MIN_PART_BYTES || parts < 1) throw new Error(`bad upload settings: ${partBytes} bytes per part, ${parts} parts`);
  return (key, lines) => new LinesUpload(s3, bucket, key, partBytes, parts).run(lines);
}

class LinesUpload {
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private current: Buffer | null = null;
  private used = 0;
  private uploadId: string | undefined;
  private readonly done: CompletedPart[] = [];
  /** Part uploads under way, oldest first; each settles without rejecting (a failure is kept in `failure`). */
  private readonly inFlight: Promise<void>[] = [];
  private failure: { error: unknown } | null = null;
  private partCount = 0;
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly key: string;
  private readonly partBytes: number;
  private readonly parts: number;

  constructor(s3: S3Client, bucket: string, key: string, partBytes: number, parts: number) {
    this.s3 = s3;
    this.bucket = bucket;
    this.key = key;
    this.partBytes = partBytes;
    this.parts = parts;
  }

  async run(lines: AsyncIterable<string>): Promise<void> {
    try {
      for await (const line of lines) await this.write(line);
      if (this.uploadId === undefined) {
        const body = this.current ? this.current.subarray(0, this.used) : Buffer.alloc(0);
        await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: body, ContentType: CONTENT_TYPE }));
        return;
      }
      if (this.used > 0) await this.ship();
      while (this.inFlight.length > 0) await this.inFlight.shift();
      this.check();
      await this.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          MultipartUpload: { Parts: this.done.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0)) },
        }),
      );
    } catch (err) {
      if (this.uploadId !== undefined) {
        await Promise.allSettled(this.inFlight);
        await this.s3
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }))
          .catch(() => {}); // the upload's own error is the one to report
      }
      throw err;
    }
  }

  private async write(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line, "utf8");
    let buf = this.current ?? (await this.take());
    if (bytes <= buf.length - this.used) {
      this.used += buf.write(line, this.used, "utf8");
      return;
    }
    // The line crosses into the next part: copied in pieces (a part ends mid-line, as S3 allows).
    const encoded = Buffer.from(line, "utf8");
    let at = 0;
    while (at < encoded.length) {
      if (this.used === buf.length) {
        await this.ship();
        buf = await this.take();
      }
      const n = encoded.copy(buf, this.used, at);
      this.used += n;
      at += n;
    }
  }

  /** A free part buffer as `current`, waiting for the oldest upload when every buffer is in use. */
  private async take(): Promise<Buffer> {
    while (this.free.length === 0 && this.allocated >= this.parts) {
      await this.inFlight.shift();
      this.check();
    }
    let buf = this.free.pop();
    if (!buf) {
      buf = Buffer.allocUnsafeSlow(this.partBytes);
      this.allocated++;
    }
    this.current = buf;
    this.used = 0;
    return buf;
  }

  /** Starts uploading `current` as the next part; its buffer is free again once S3 has it. */
  private async ship(): Promise<void> {
    this.check();
    const buf = this.current as Buffer;
    const body = buf.subarray(0, this.used);
    this.current = null;
    this.used = 0;
    if (this.uploadId === undefined) {
      // As @aws-sdk/lib-storage does: the parts' CRC32s (computed by the client by default) are declared up front.
      const checksums = (await this.s3.config.requestChecksumCalculation()) === "WHEN_SUPPORTED";
      const created = await this.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          ContentType: CONTENT_TYPE,
          ...(checksums ? { ChecksumAlgorithm: "CRC32" as const } : {}),
        }),
      );
      if (!created.UploadId) throw new Error(`S3 gave no UploadId for s3://${this.bucket}/${this.key}`);
      this.uploadId = created.UploadId;
    }
    const partNumber = ++this.partCount;
    if (partNumber > MAX_PARTS) throw new Error(`the upload needs more than ${MAX_PARTS} parts of ${this.partBytes} bytes`);
    const upload = this.s3
      .send(new UploadPartCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, PartNumber: partNumber, Body: body }))
      .then((res) => {
        if (!res.ETag) throw new Error(`S3 gave no ETag for part ${partNumber} of s3://${this.bucket}/${this.key}`);
        this.done.push({ PartNumber: partNumber, ETag: res.ETag, ...(res.ChecksumCRC32 ? { ChecksumCRC32: res.ChecksumCRC32 } : {}) });
        this.free.push(buf);
      })
      .catch((error: unknown) => {
        this.failure ??= { error };
      });
    this.inFlight.push(upload);
  }

  private check(): void {
    if (this.failure) throw this.failure.error;
  }
}
