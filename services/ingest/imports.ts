/**
 * S3 bulk import: a force uploads a JSON Lines file of signed submissions (the force CLI makes
 * one from VICS, CSV or JSON) and asks the hub to import it. The file is streamed line by line
 * (line-reader.ts: original bytes, exact byte counts, over-long lines cut) in chunks through the
 * same intake core as HTTP, so memory stays bounded whatever its size: nothing is kept per line
 * once its chunk is admitted, beyond the receipt's first rejected lines.
 * A receipt (counts by reason and the rejected lines) is written back to S3 beside the file.
 *
 * An import interrupted by a stop is re-queued and run again from the start: lines already
 * accepted come back as duplicates, so nothing is lost and nothing is published twice.
 *
 * After each chunk the job row carries the running counts and how far the run has read (lines,
 * bytes of the object's size, start time), so a client polling the job can show progress. A
 * re-queued run starts them again from zero, as its receipt does.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { HashrelayError } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import type { Queryable } from "../shared/postgres.ts";
import { parseSubmissionBatch } from "../shared/wire/submission-json.ts";
import { addToReceipt, emptyReceipt } from "../shared/wire/ingest-api.ts";
import type { ImportJob, ImportStatus, ItemOutcome, Receipt, RejectedLine } from "../shared/wire/ingest-api.ts";
import { admitBatch } from "./intake.ts";
import type { IntakeDeps, IntakeItem } from "./intake.ts";
import { readLines } from "./line-reader.ts";
import type { IngestMetrics } from "./metrics.ts";

export interface ImportServiceDeps {
  readonly db: Queryable;
  readonly s3: S3Client;
  readonly defaultBucket: string;
  readonly intake: IntakeDeps;
  readonly logger: Logger;
  readonly metrics?: IngestMetrics;
  readonly chunkSize?: number;
  /** Longest line accepted; longer ones are rejected (BODY_TOO_LARGE) without being buffered whole. */
  readonly maxLineBytes?: number;
}

interface ImportRow {
  import_id: string;
  agency_id: string;
  bucket: string;
  object_key: string;
  status: ImportStatus;
  accepted: number;
  duplicates: number;
  rejected: number;
  by_reason: Partial<Record<ReasonCode, number>>;
  receipt_key: string | null;
  error: string | null;
  lines_read: number;
  bytes_read: number;
  total_bytes: number | null;
  started_at: Date | null;
  updated_at: Date;
}

/** How far the current run has read its object. */
interface Progress {
  linesRead: number;
  bytesRead: number;
}

function toJob(r: ImportRow): ImportJob {
  return {
    importId: r.import_id,
    agencyId: r.agency_id,
    bucket: r.bucket,
    key: r.object_key,
    status: r.status,
    receipt: { accepted: r.accepted, duplicates: r.duplicates, rejected: r.rejected, byReason: r.by_reason },
    receiptKey: r.receipt_key,
    error: r.error,
    linesRead: r.lines_read,
    bytesRead: r.bytes_read,
    totalBytes: r.total_bytes,
    startedAt: r.started_at?.toISOString() ?? null,
    updatedAt: r.updated_at.toISOString(),
  };
}

const MAX_RECEIPT_DETAILS = 10_000;
/** What an over-long line's dead-letter record keeps of it. */
const KEPT_OF_LONG_LINE = 64 * 1024;

export class ImportService {
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;

  private readonly deps: ImportServiceDeps;

  constructor(deps: ImportServiceDeps) {
    this.deps = deps;
  }

  /** The bucket imports are read from (and receipts written to). */
  get bucket(): string {
    return this.deps.defaultBucket;
  }

  async start(agencyId: string, key: string): Promise<ImportJob> {
    const importId = randomUUID();
    const { rows } = await this.deps.db.query<ImportRow>(
      `INSERT INTO ingest_imports (import_id, agency_id, bucket, object_key, status) VALUES ($1, $2, $3, $4, 'queued') RETURNING *`,
      [importId, agencyId, this.deps.defaultBucket, key],
    );
    const job = toJob(rows[0] as ImportRow);
    this.launch(job);
    return job;
  }

  async get(agencyId: string, importId: string): Promise<ImportJob | undefined> {
    const { rows } = await this.deps.db.query<ImportRow>("SELECT * FROM ingest_imports WHERE import_id = $1 AND agency_id = $2", [
      importId,
      agencyId,
    ]);
    return rows[0] ? toJob(rows[0]) : undefined;
  }

  /** Picks up imports a previous process left queued or running. */
  async resumePending(): Promise<number> {
    const { rows } = await this.deps.db.query<ImportRow>(
      "SELECT * FROM ingest_imports WHERE status IN ('queued', 'running') ORDER BY created_at",
    );
    for (const r of rows) this.launch(toJob(r));
    return rows.length;
  }

  /** Stops taking chunks; running imports finish their chunk in hand and go back to queued. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()]);
  }

  private launch(job: ImportJob): void {
    if (this.running.has(job.importId) || this.stopping) return;
    const run = this.run(job).finally(() => this.running.delete(job.importId));
    this.running.set(job.importId, run);
  }

  /** Marks a run started on an object of `totalBytes` (null when S3 does not say): counts and progress from zero. */
  private async begin(importId: string, totalBytes: number | null) {
    await this.deps.db.query(
      `UPDATE ingest_imports SET status = 'running', accepted = 0, duplicates = 0, rejected = 0, by_reason = '{}',
         lines_read = 0, bytes_read = 0, total_bytes = $2, started_at = now(), error = NULL, updated_at = now()
       WHERE import_id = $1`,
      [importId, totalBytes],
    );
  }

  /** Puts an interrupted run back in the queue; the next run starts its counts and progress again. */
  private async requeue(importId: string) {
    await this.deps.db.query(
      `UPDATE ingest_imports SET status = 'queued', accepted = 0, duplicates = 0, rejected = 0, by_reason = '{}',
         lines_read = 0, bytes_read = 0, total_bytes = NULL, started_at = NULL, updated_at = now() WHERE import_id = $1`,
      [importId],
    );
  }

  private async setStatus(
    importId: string,
    status: ImportStatus,
    receipt: Receipt,
    progress: Progress,
    extra: { receiptKey?: string; error?: string } = {},
  ) {
    await this.deps.db.query(
      `UPDATE ingest_imports SET status = $2, accepted = $3, duplicates = $4, rejected = $5, by_reason = $6,
         lines_read = $7, bytes_read = $8, receipt_key = COALESCE($9, receipt_key), error = $10, updated_at = now()
       WHERE import_id = $1`,
      [
        importId,
        status,
        receipt.accepted,
        receipt.duplicates,
        receipt.rejected,
        JSON.stringify(receipt.byReason),
        progress.linesRead,
        progress.bytesRead,
        extra.receiptKey ?? null,
        extra.error ?? null,
      ],
    );
  }

  private async run(job: ImportJob): Promise<void> {
    const log = this.deps.logger.child({ importId: job.importId, agencyId: job.agencyId });
    const receipt = emptyReceipt();
    const rejectedLines: RejectedLine[] = [];
    const progress: Progress = { linesRead: 0, bytesRead: 0 };
    try {
      const object = await this.deps.s3.send(new GetObjectCommand({ Bucket: job.bucket, Key: job.key }));
      const totalBytes = object.ContentLength ?? null;
      await this.begin(job.importId, totalBytes);
      const completed = await this.importLines(object.Body as Readable, job.agencyId, receipt, rejectedLines, progress, () =>
        this.setStatus(job.importId, "running", receipt, progress),
      );
      if (!completed) {
        await this.requeue(job.importId);
        log.info("import interrupted by shutdown; re-queued");
        return;
      }
      const receiptKey = `${job.key}.receipt.json`;
      await this.deps.s3.send(
        new PutObjectCommand({
          Bucket: job.bucket,
          Key: receiptKey,
          ContentType: "application/json",
          Body: JSON.stringify(
            {
              importId: job.importId,
              agencyId: job.agencyId,
              object: job.key,
              finishedAt: new Date().toISOString(),
              ...receipt,
              rejectedLines,
            },
            null,
            2,
          ),
        }),
      );
      await this.setStatus(job.importId, "done", receipt, progress, { receiptKey });
      log.info({ ...receipt }, "import done");
    } catch (err) {
      const reason = err instanceof HashrelayError ? err.reason : "INTERNAL";
      log.error({ err, reason }, "import failed");
      await this.setStatus(job.importId, "failed", receipt, progress, { error: `${reason}: ${(err as Error).message}` }).catch(
        () => undefined,
      );
    }
  }

  /**
   * Returns false when stopped before the end of the file. `progress` counts the lines and bytes
   * read, each line with its break; `saveProgress` records it after each chunk.
   */
  private async importLines(
    body: Readable,
    agencyId: string,
    receipt: Receipt,
    rejectedLines: RejectedLine[],
    progress: Progress,
    saveProgress: () => Promise<void>,
  ): Promise<boolean> {
    const chunkSize = this.deps.chunkSize ?? 500;
    const maxLine = this.deps.maxLineBytes ?? 1_000_000;
    let chunk: IntakeItem[] = [];
    let lineNo = 0;

    const flush = async () => {
      if (chunk.length === 0) return;
      const outcomes = await admitBatch(this.deps.intake, { agencyId }, "s3-import", chunk);
      addToReceipt(receipt, outcomes);
      this.deps.metrics?.admitted("s3-import", outcomes);
      for (const o of outcomes) {
        if (o.status === "rejected" && rejectedLines.length < MAX_RECEIPT_DETAILS) {
          rejectedLines.push(lineOf(o));
        }
      }
      chunk = [];
      progress.linesRead = lineNo;
      await saveProgress();
    };

    for await (const line of readLines(body, { maxLineBytes: maxLine, keepBytes: KEPT_OF_LONG_LINE })) {
      lineNo++;
      progress.bytesRead = line.end;
      const original = line.bytes;
      if (line.length > maxLine) {
        chunk.push({
          index: lineNo,
          ok: false,
          reason: "BODY_TOO_LARGE",
          detail: `line longer than ${maxLine} bytes`,
          original,
        });
      } else {
        const first = firstCharacter(original);
        if (first === "") continue;
        // One submission object a line: an array (empty or not) is refused whole, never cut to its first item.
        const items = parseSubmissionBatch(original);
        const only = items.length === 1 && first !== "[" ? items[0] : undefined;
        chunk.push(
          only
            ? ({ ...only, index: lineNo } as IntakeItem)
            : {
                index: lineNo,
                ok: false,
                reason: "INVALID_FIELD",
                detail: "a line must hold one submission object, not an array",
                original,
              },
        );
      }
      if (chunk.length >= chunkSize) {
        await flush();
        if (this.stopping) {
          body.destroy();
          return false;
        }
      }
    }
    await flush();
    progress.linesRead = lineNo;
    return true;
  }
}

/**
 * The line's first character after white space (a byte-order mark counts as white space), or ""
 * for a blank line. Lines of submissions start with "{", so they are not decoded here.
 */
function firstCharacter(line: Buffer): string {
  if (line[0] === 0x7b) return "{";
  return line.toString("utf8").trimStart().charAt(0);
}

function lineOf(o: ItemOutcome): RejectedLine {
  return { line: o.index, submissionId: o.submissionId, reason: o.reason ?? "INTERNAL", detail: o.detail ?? "" };
}
