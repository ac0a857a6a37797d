/**
 * The ingest core: turns parsed items from any channel (HTTP, CLI, S3 import) into accepted
 * submissions on hashes.submitted.v1 and rejections on hashes.rejected.v1. It needs no network
 * itself: the key registry, the ledger of seen submission ids and the Kafka sink are injected.
 *
 * An item is accepted only when it is well formed, from the authenticated agency, signed with
 * one of that agency's usable keys, and not a different submission reusing an id. A retry of an
 * identical submission is answered as a duplicate and not published again.
 */
import { createHash } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { auditBatches } from "../shared/audit.ts";
import { buildRejection } from "../shared/dead-letter.ts";
import { HashrelayError, reasonOf } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import { verifySignedRecord } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import type { AuditEvent, Rejection, Submission } from "../shared/wire/records.ts";
import type { ItemOutcome } from "../shared/wire/ingest-api.ts";
import { partitionKey } from "./partition-key.ts";
import { requestReplayed } from "./request-auth.ts";
import type { ReplayClaim } from "./request-auth.ts";
import { validateSubmission } from "../shared/wire/submission-validation.ts";

export const SERVICE = "ingest";

export type Channel = "http" | "cli" | "s3-import" | "redrive";

export type IntakeItem =
  | { readonly index: number; readonly ok: true; readonly submission: Submission; readonly original: Buffer }
  | { readonly index: number; readonly ok: false; readonly reason: ReasonCode; readonly detail: string; readonly original: Buffer };

export interface AcceptedSubmission {
  readonly submission: Submission;
  readonly bytes: Buffer;
  readonly key: string;
  readonly digest: Buffer;
}

/** Where intake's results go: Kafka in production. publish resolves only once durably written. */
export interface IntakeSink {
  publish(batch: { accepted: AcceptedSubmission[]; rejected: Rejection[]; audit: AuditEvent[] }): Promise<void>;
}

/**
 * The digest that decides "same submission" for idempotency: what the submission says, not when
 * or with which key it was signed. Re-running the force CLI on the same file (new submittedAt,
 * perhaps a rotated key) is then a duplicate, while reusing an id for other content is a conflict.
 */
export function contentDigest(sub: Submission): Buffer {
  const { submissionId, agencyId, op, contentType, hashes, grade, gradingStatus, lawEnforcement } = sub;
  return createHash("sha256")
    .update(JSON.stringify({ submissionId, agencyId, op, contentType, hashes, grade, gradingStatus, lawEnforcement }))
    .digest();
}

/** Submission ids already accepted and the content digest of what was accepted under each. */
export interface SubmissionLedger {
  /**
   * The digest accepted under each of these ids, where there was one. Given a signed request's replay
   * claim, it also remembers the claim in the same round trip; `firstUse` is false when it was made
   * before (and true without a claim).
   */
  lookup(submissionIds: string[], claim?: ReplayClaim): Promise<LedgerLookup>;
  record(entries: { submissionId: string; agencyId: string; digest: Buffer }[]): Promise<void>;
}

export interface LedgerLookup {
  readonly seen: Map<string, Buffer>;
  readonly firstUse: boolean;
}

export interface IntakeDeps {
  readonly codec: AvroCodec;
  readonly keys: KeyLookup;
  readonly ledger: SubmissionLedger;
  readonly sink: IntakeSink;
  readonly now?: () => Date;
  /** Older submissions are refused here (dedup refuses them too, as replays). */
  readonly maxSubmissionAgeMs?: number;
}

/**
 * Admits one batch for an authenticated agency; returns one outcome per item, in order. With the
 * replay claim of the signed request that brought it, a request seen before is refused
 * (REQUEST_REPLAYED) before anything is published.
 */
export async function admitBatch(
  deps: IntakeDeps,
  principal: { agencyId: string },
  channel: Channel,
  items: readonly IntakeItem[],
  claim?: ReplayClaim,
): Promise<ItemOutcome[]> {
  const now = deps.now?.() ?? new Date();
  const outcomes: ItemOutcome[] = [];
  const rejected: Rejection[] = [];
  const candidates: { index: number; accepted: AcceptedSubmission }[] = [];

  const reject = (item: IntakeItem, submissionId: string | null, reason: ReasonCode, detail: string) => {
    outcomes[item.index] = { index: item.index, submissionId, status: "rejected", reason, detail };
    rejected.push(buildRejection(item.original, reason, detail, { service: SERVICE, channel, agencyId: principal.agencyId, submissionId }));
  };

  for (const item of items) {
    if (!item.ok) {
      reject(item, null, item.reason, item.detail);
      continue;
    }
    const sub = item.submission;
    try {
      validateSubmission(sub, now);
      if (deps.maxSubmissionAgeMs !== undefined && now.getTime() - sub.submittedAt > deps.maxSubmissionAgeMs) {
        throw new HashrelayError(
          "STALE_SUBMISSION",
          `submittedAt ${new Date(sub.submittedAt).toISOString()} is older than the hub accepts; re-sign it`,
        );
      }
      if (sub.agencyId !== principal.agencyId) {
        throw new HashrelayError("AGENCY_MISMATCH", `authenticated as ${principal.agencyId} but the submission says ${sub.agencyId}`);
      }
      const bytes = deps.codec.encode("Submission", sub);
      await verifySignedRecord("Submission", deps.codec.schema("Submission").type, sub, deps.keys, {
        ownerKind: "agency",
        ownerId: principal.agencyId,
        at: now,
        signedAt: new Date(sub.submittedAt),
      });
      candidates.push({
        index: item.index,
        accepted: { submission: sub, bytes, key: partitionKey(sub.hashes), digest: contentDigest(sub) },
      });
    } catch (err) {
      const detail = err instanceof HashrelayError ? err.detail : (err as Error).message;
      reject(item, sub.submissionId, reasonOf(err), detail);
    }
  }

  // Idempotency: the same id with the same bytes is a retry; with other bytes, a conflict.
  const { seen, firstUse } = await deps.ledger.lookup(
    candidates.map((c) => c.accepted.submission.submissionId),
    claim,
  );
  if (claim && !firstUse) throw requestReplayed(claim);
  const inBatch = new Map<string, Buffer>();
  const accepted: AcceptedSubmission[] = [];
  for (const { index, accepted: a } of candidates) {
    const id = a.submission.submissionId;
    const prior = seen.get(id) ?? inBatch.get(id);
    if (prior?.equals(a.digest)) {
      outcomes[index] = { index, submissionId: id, status: "duplicate" };
    } else if (prior) {
      const item = items.find((i) => i.index === index) as IntakeItem;
      reject(item, id, "DUPLICATE_SUBMISSION", `submission id ${id} was already used for different content`);
    } else {
      inBatch.set(id, a.digest);
      accepted.push(a);
      outcomes[index] = { index, submissionId: id, status: "accepted" };
    }
  }

  // One audit.batch per request (shared/audit.ts), not one event per submission.
  const audit = auditBatches(
    SERVICE,
    principal.agencyId,
    now.getTime(),
    accepted.map((a) => ({
      service: SERVICE,
      actor: principal.agencyId,
      action: a.submission.op === "RETRACT" ? "submission.retract-received" : "submission.received",
      subjectKind: "submission",
      subjectId: a.submission.submissionId,
      detail: { channel, keyId: a.submission.keyId },
    })),
  );
  await deps.sink.publish({ accepted, rejected, audit });
  // Only after Kafka has them: a crash in between means a retry re-publishes, which dedup absorbs.
  await deps.ledger.record(
    accepted.map((a) => ({ submissionId: a.submission.submissionId, agencyId: principal.agencyId, digest: a.digest })),
  );
  return items.map((i) => outcomes[i.index] as ItemOutcome);
}
