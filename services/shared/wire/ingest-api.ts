/**
 * The JSON bodies the hub's ingest API answers with, shared by the ingest service (which writes
 * them) and the force CLI (which reads them): the outcome of each submitted item, the receipt of
 * a batch or an import (counts by reason), the state of an S3 import job, and the rejected lines
 * of an import receipt written back to S3.
 *
 * Frozen contract: force tooling parses these fields by name. Renaming or retyping one breaks
 * every force client; add new optional fields instead, and serve an incompatible shape only under
 * a new API path version (/v2/...).
 */
import type { ReasonCode } from "../errors.ts";

export interface ItemOutcome {
  readonly index: number;
  readonly submissionId: string | null;
  readonly status: "accepted" | "duplicate" | "rejected";
  readonly reason?: ReasonCode;
  readonly detail?: string;
}

export interface Receipt {
  accepted: number;
  duplicates: number;
  rejected: number;
  byReason: Partial<Record<ReasonCode, number>>;
}

export function emptyReceipt(): Receipt {
  return { accepted: 0, duplicates: 0, rejected: 0, byReason: {} };
}

export function addToReceipt(receipt: Receipt, outcomes: readonly ItemOutcome[]): Receipt {
  for (const o of outcomes) {
    if (o.status === "accepted") receipt.accepted++;
    else if (o.status === "duplicate") receipt.duplicates++;
    else {
      receipt.rejected++;
      const reason = o.reason ?? "INTERNAL";
      receipt.byReason[reason] = (receipt.byReason[reason] ?? 0) + 1;
    }
  }
  return receipt;
}

export type ImportStatus = "queued" | "running" | "done" | "failed";

export interface ImportJob {
  readonly importId: string;
  readonly agencyId: string;
  readonly bucket: string;
  readonly key: string;
  readonly status: ImportStatus;
  readonly receipt: Receipt;
  readonly receiptKey: string | null;
  readonly error: string | null;
  /**
   * Progress of the current run, updated after each chunk (optional: older hubs do not send them).
   * Lines (blank ones included) and bytes of the object read and admitted so far; the object's size
   * from S3 (null until the run has opened it); when the run started and when the job last changed
   * (both hub clock, ISO 8601). A re-queued import restarts them with its counts.
   */
  readonly linesRead?: number;
  readonly bytesRead?: number;
  readonly totalBytes?: number | null;
  readonly startedAt?: string | null;
  readonly updatedAt?: string;
}

/** One rejected line in the receipt an import writes beside its file in S3. */
export interface RejectedLine {
  readonly line: number;
  readonly submissionId: string | null;
  readonly reason: ReasonCode;
  readonly detail: string;
}
