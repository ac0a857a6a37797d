/** Network adapters of the ingest core: the Kafka sink and the PostgreSQL ledger. */
import type { RecordProducer } from "../shared/kafka.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { Queryable } from "../shared/postgres.ts";
import { bound } from "../shared/pg-arrays.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { IntakeSink, SubmissionLedger } from "./intake.ts";
import type { RequestReplayGuard } from "./request-auth.ts";

/** Publishes a batch with acks from all in-sync replicas; resolves once Kafka holds all of it. */
export function kafkaIntakeSink(producer: RecordProducer, codec: AvroCodec, topics: TopicNames): IntakeSink {
  return {
    async publish({ accepted, rejected, audit }) {
      const topicMessages = [
        { topic: topics.submitted, messages: accepted.map((a) => ({ key: a.key, value: a.bytes })) },
        {
          topic: topics.rejected,
          messages: rejected.map((r) => ({ key: r.agencyId, value: codec.encode("Rejection", r) })),
        },
        { topic: topics.audit, messages: audit.map((e) => ({ key: e.subjectId, value: codec.encode("AuditEvent", e) })) },
      ].filter((t) => t.messages.length > 0);
      if (topicMessages.length === 0) return;
      await producer.sendBatch({ acks: -1, topicMessages });
    },
  };
}

const PURGE_EXPIRED_SIGNATURES = "DELETE FROM ingest_request_signatures WHERE forget_after < now()";

// A request's statements are named: node-postgres prepares each once per connection, so
// PostgreSQL parses them once rather than on every request.
const LOOKUP = {
  name: "ingest.ledger-lookup",
  text: "SELECT submission_id, digest FROM ingest_submissions WHERE submission_id = ANY($1::text[])",
};
// One row even when no id is known (the LEFT JOIN), carrying whether the claim was new.
const CLAIM_AND_LOOKUP = {
  name: "ingest.claim-and-lookup",
  text: `WITH claim AS (
           INSERT INTO ingest_request_signatures (signature_digest, forget_after) VALUES ($2::bytea, $3::timestamptz)
           ON CONFLICT DO NOTHING RETURNING 1
         )
         SELECT EXISTS (SELECT 1 FROM claim) AS first_use, s.submission_id, s.digest
         FROM (SELECT 1) AS one LEFT JOIN ingest_submissions s ON s.submission_id = ANY($1::text[])`,
};
const RECORD = {
  name: "ingest.ledger-record",
  text: `INSERT INTO ingest_submissions (submission_id, agency_id, digest)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
         ON CONFLICT (submission_id) DO NOTHING`,
};
const CLAIM = {
  name: "ingest.claim",
  text: `INSERT INTO ingest_request_signatures (signature_digest, forget_after) VALUES ($1::bytea, $2::timestamptz)
         ON CONFLICT DO NOTHING`,
};

export function pgSubmissionLedger(db: Queryable, purgeEveryMs = 60_000): SubmissionLedger {
  let lastPurge = 0;
  return {
    async lookup(ids, claim) {
      if (!claim) {
        if (ids.length === 0) return { seen: new Map(), firstUse: true };
        const { rows } = await db.query<{ submission_id: string; digest: Buffer }>(bound(LOOKUP, [ids]));
        return { seen: new Map(rows.map((r) => [r.submission_id, r.digest])), firstUse: true };
      }
      if (Date.now() - lastPurge > purgeEveryMs) {
        lastPurge = Date.now();
        await db.query(PURGE_EXPIRED_SIGNATURES);
      }
      const { rows } = await db.query<{ first_use: boolean; submission_id: string | null; digest: Buffer | null }>(
        bound(CLAIM_AND_LOOKUP, [ids, claim.signatureDigest, claim.forgetAfter]),
      );
      const seen = new Map<string, Buffer>();
      for (const r of rows) if (r.submission_id !== null && r.digest !== null) seen.set(r.submission_id, r.digest);
      return { seen, firstUse: rows[0]?.first_use === true };
    },
    async record(entries) {
      if (entries.length === 0) return;
      await db.query(bound(RECORD, [entries.map((e) => e.submissionId), entries.map((e) => e.agencyId), entries.map((e) => e.digest)]));
    },
  };
}

/**
 * Request signatures seen, in PostgreSQL so that every ingest instance refuses a replay; rows are
 * dropped once their timestamp can no longer pass the clock-skew check anyway.
 */
export function pgRequestReplayGuard(db: Queryable, purgeEveryMs = 60_000): RequestReplayGuard {
  let lastPurge = 0;
  return {
    async firstUse(signatureDigest, forgetAfter) {
      if (Date.now() - lastPurge > purgeEveryMs) {
        lastPurge = Date.now();
        await db.query(PURGE_EXPIRED_SIGNATURES);
      }
      const { rowCount } = await db.query({ ...CLAIM, values: [signatureDigest, forgetAfter] });
      return rowCount === 1;
    },
  };
}
