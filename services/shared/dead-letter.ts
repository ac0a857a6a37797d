/** Building Rejection records for hashes.rejected.v1: the original bytes and a reason, always. */
import { randomUUID } from "node:crypto";
import type { ReasonCode } from "./errors.ts";
import type { Rejection } from "./wire/records.ts";

export interface RejectionContext {
  readonly service: string;
  readonly channel?: string | null;
  readonly agencyId?: string | null;
  readonly submissionId?: string | null;
  readonly sourceTopic?: string | null;
  readonly sourcePartition?: number | null;
  readonly sourceOffset?: string | null;
}

export function buildRejection(original: Buffer, reason: ReasonCode, detail: string, ctx: RejectionContext): Rejection {
  return {
    rejectionId: randomUUID(),
    originalBytes: original,
    reason,
    detail: detail.slice(0, 2000),
    service: ctx.service,
    channel: ctx.channel ?? null,
    agencyId: ctx.agencyId ?? null,
    submissionId: ctx.submissionId ?? null,
    sourceTopic: ctx.sourceTopic ?? null,
    sourcePartition: ctx.sourcePartition ?? null,
    sourceOffset: ctx.sourceOffset ?? null,
    rejectedAt: Date.now(),
  };
}
