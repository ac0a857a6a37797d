/**
 * Everything the console reads, from the hub database and the broker (as the admin principal, as
 * the CLI does). The figures come from the readers the services' /metrics use (pipeline-state.ts,
 * feed-state.ts), so the console and Prometheus agree. A part that cannot be read is reported as
 * unavailable with its reason, and the rest of the page still renders.
 */
import type { Admin, Kafka } from "kafkajs";
import { readExportStatus, readFeedHeads, readPartnerLag } from "../../distribution/feed-state.ts";
import { listPolicies } from "../../distribution/policy-store.ts";
import { expandAuditEvent } from "../../shared/audit.ts";
import { consumerGroups } from "../../shared/kafka-access.ts";
import { readTopicToEnd } from "../../shared/kafka.ts";
import { readKeyCoverage, readOutboxBacklog, readStageLag, readTopicDepth } from "../../shared/pipeline-state.ts";
import type { KeyCoverage, OutboxBacklog, StageLag } from "../../shared/pipeline-state.ts";
import type { Queryable } from "../../shared/postgres.ts";
import type { TopicNames } from "../../shared/topics.ts";
import type { AvroCodec } from "../../shared/wire/codec.ts";
import type { Rejection } from "../../shared/wire/records.ts";
import { listPartners } from "../registry.ts";
import { readRejections } from "../redrive.ts";
import { RateTracker } from "./overview.ts";
import type { Disclosure, FullRecord, HashQuery, KeyRow, PartnerStatus } from "./overview.ts";

/** A read that may fail on its own: its value, or why it is missing. */
export type Part<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

async function part<T>(read: () => Promise<T>): Promise<Part<T>> {
  try {
    return { ok: true, value: await read() };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export interface StageStatus {
  readonly name: "ingest" | "dedup" | "distribution";
  readonly input: string;
  readonly lag: Part<readonly StageLag[]> | null;
  /** Items the stage took in over the last 5 minutes and the last hour (from its tables); null where it keeps no times. */
  readonly last5m: Part<number> | null;
  readonly lastHour: Part<number> | null;
  /** Messages per second over the last minute, from successive readings; null until there are two. */
  readonly perSecond: number | null;
  readonly outbox: Part<OutboxBacklog> | null;
}

export interface PipelineStatus {
  readonly stages: readonly StageStatus[];
  readonly canonicalRecords: Part<{ live: number; withdrawn: number }>;
  readonly deadLetter: Part<number>;
}

export interface RejectionRow {
  readonly rejectedAt: number;
  readonly service: string;
  readonly reason: string;
  readonly channel: string | null;
  readonly agencyId: string | null;
  readonly submissionId: string | null;
  readonly detail: string;
}

export interface ConsoleReads {
  pipeline(): Promise<PipelineStatus>;
  partners(): Promise<PartnerStatus[]>;
  rejections(): Promise<RejectionRow[]>;
  keys(): Promise<{ keys: KeyRow[]; coverage: { agency: Part<KeyCoverage>; hub: Part<KeyCoverage> } }>;
  /** Records holding the hash (following merges to the survivor). */
  lookup(q: HashQuery): Promise<FullRecord[]>;
  /** Disclosures of these records to partners, from audit.v1, oldest first. */
  disclosures(recordIds: readonly string[]): Promise<Disclosure[]>;
}

const count = async (db: Queryable, sql: string): Promise<number> => Number((await db.query<{ n: string }>(sql)).rows[0]?.n ?? 0);

export interface PgKafkaReadsDeps {
  readonly db: Queryable;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly codec: AvroCodec;
  readonly topics: TopicNames;
  readonly namespace: string;
  readonly rates?: RateTracker;
  readonly now?: () => number;
  /** How long a DLQ read is reused: reading the topic to its end takes a consumer group's join. */
  readonly dlqCacheMs?: number;
}

export function pgKafkaReads(deps: PgKafkaReadsDeps): ConsoleReads {
  const { db, admin, topics } = deps;
  const rates = deps.rates ?? new RateTracker();
  const now = deps.now ?? Date.now;
  const groups = consumerGroups(deps.namespace);
  let dlqCache: { at: number; rows: Promise<RejectionRow[]> } | null = null;

  const positions = (lags: Part<readonly StageLag[]> | null) => (lags?.ok ? lags.value.reduce((n, p) => n + p.next, 0) : null);

  return {
    async pipeline() {
      const [submittedEnds, dedupLag, distLag, recv5, recvHour, applied5, appliedHour, outbox, feedOutbox, records, dead] =
        await Promise.all([
          part(() => admin.fetchTopicOffsets(topics.submitted)),
          part(() => readStageLag(db, admin, groups.dedup, topics.submitted)),
          part(() => readStageLag(db, admin, groups.distribution, topics.canonical)),
          part(() => count(db, "SELECT count(*)::text AS n FROM ingest_submissions WHERE received_at > now() - interval '5 minutes'")),
          part(() => count(db, "SELECT count(*)::text AS n FROM ingest_submissions WHERE received_at > now() - interval '1 hour'")),
          part(() => count(db, "SELECT count(*)::text AS n FROM applied_submissions WHERE applied_at > now() - interval '5 minutes'")),
          part(() => count(db, "SELECT count(*)::text AS n FROM applied_submissions WHERE applied_at > now() - interval '1 hour'")),
          part(() => readOutboxBacklog(db, "outbox")),
          part(() => readOutboxBacklog(db, "feed_outbox")),
          part(async () => {
            const { rows } = await db.query<{ live: string; withdrawn: string }>(
              "SELECT count(*) FILTER (WHERE NOT deleted)::text AS live, count(*) FILTER (WHERE deleted)::text AS withdrawn FROM canonical_records",
            );
            return { live: Number(rows[0]?.live ?? 0), withdrawn: Number(rows[0]?.withdrawn ?? 0) };
          }),
          part(() => readTopicDepth(admin, topics.rejected)),
        ]);
      const at = now();
      if (submittedEnds.ok)
        rates.record(
          "ingest",
          submittedEnds.value.reduce((n, e) => n + Number(e.high), 0),
          at,
        );
      const dedupAt = positions(dedupLag);
      if (dedupAt !== null) rates.record("dedup", dedupAt, at);
      const distAt = positions(distLag);
      if (distAt !== null) rates.record("distribution", distAt, at);
      return {
        stages: [
          {
            name: "ingest",
            input: "HTTP API and S3 imports",
            lag: null,
            last5m: recv5,
            lastHour: recvHour,
            perSecond: rates.perSecond("ingest"),
            outbox: null,
          },
          {
            name: "dedup",
            input: topics.submitted,
            lag: dedupLag,
            last5m: applied5,
            lastHour: appliedHour,
            perSecond: rates.perSecond("dedup"),
            outbox,
          },
          {
            name: "distribution",
            input: topics.canonical,
            lag: distLag,
            last5m: null,
            lastHour: null,
            perSecond: rates.perSecond("distribution"),
            outbox: feedOutbox,
          },
        ],
        canonicalRecords: records,
        deadLetter: dead,
      };
    },

    async partners() {
      const [listings, names, heads, holdings, unmappable] = await Promise.all([
        listPolicies(db),
        listPartners(db),
        readFeedHeads(db),
        db.query<{ partner_id: string; n: string }>("SELECT partner_id, count(*)::text AS n FROM feed_entries GROUP BY partner_id"),
        db.query<{ partner_id: string; n: string }>("SELECT partner_id, sum(count)::text AS n FROM unmappable_counts GROUP BY partner_id"),
      ]);
      const policies = listings.map((l) => l.policy);
      const lag = await part(() => readPartnerLag(admin, topics, deps.namespace, policies));
      const exports = await part(() => readExportStatus(db, policies));
      return listings.map((listing) => {
        const id = listing.policy.partnerId;
        const own = lag.ok ? (lag.value.find((l) => l.partnerId === id) ?? null) : null;
        const errors: string[] = [];
        if (!lag.ok && listing.policy.delivery !== "s3") errors.push(`feed lag (${lag.error})`);
        if (!exports.ok && listing.policy.delivery !== "kafka") errors.push(`export status (${exports.error})`);
        return {
          partnerId: id,
          name: names.find((n) => n.partnerId === id)?.name ?? id,
          listing,
          heads: heads.filter((h) => h.partnerId === id),
          lag: own,
          exportStatus: exports.ok ? (exports.value.find((e) => e.partnerId === id) ?? null) : null,
          holdings: Number(holdings.rows.find((r) => r.partner_id === id)?.n ?? 0),
          unmappable: Number(unmappable.rows.find((r) => r.partner_id === id)?.n ?? 0),
          errors,
        };
      });
    },

    rejections() {
      const ttl = deps.dlqCacheMs ?? 5_000;
      if (!dlqCache || now() - dlqCache.at > ttl) {
        const rows = readRejections(deps.kafka, deps.codec, topics.rejected).then((all: Rejection[]) =>
          all.map((r) => ({
            rejectedAt: r.rejectedAt,
            service: r.service,
            reason: r.reason,
            channel: r.channel,
            agencyId: r.agencyId,
            submissionId: r.submissionId,
            detail: r.detail,
          })),
        );
        dlqCache = { at: now(), rows };
        rows.catch(() => {
          dlqCache = null;
        });
        return rows;
      }
      return dlqCache.rows;
    },

    async keys() {
      const { rows } = await db.query<{
        key_id: string;
        owner_kind: string;
        owner_id: string;
        valid_from: Date;
        valid_until: Date | null;
        revoked_at: Date | null;
      }>(
        "SELECT key_id, owner_kind, owner_id, valid_from, valid_until, revoked_at FROM signing_keys ORDER BY owner_kind DESC, owner_id, valid_from",
      );
      const [agency, hub] = await Promise.all([part(() => readKeyCoverage(db, "agency")), part(() => readKeyCoverage(db, "hub"))]);
      return {
        keys: rows.map((r) => ({
          keyId: r.key_id,
          ownerKind: r.owner_kind,
          ownerId: r.owner_id,
          validFrom: r.valid_from,
          validUntil: r.valid_until,
          revokedAt: r.revoked_at,
        })),
        coverage: { agency, hub },
      };
    },

    lookup: (q) => lookupRecords(db, deps.codec, q),

    async disclosures(recordIds) {
      const wanted = new Set(recordIds);
      if (wanted.size === 0) return [];
      const messages = await readTopicToEnd(deps.kafka, topics.audit, "console-lookup", 30_000);
      return messages
        .flatMap((value) => expandAuditEvent(deps.codec.decode("AuditEvent", value).value))
        .filter((e) => (e.action === "feed.upsert" || e.action === "feed.remove") && wanted.has(e.subjectId))
        .sort((a, b) => a.at - b.at)
        .map((e) => ({
          at: e.at,
          partnerId: e.detail["partnerId"] ?? "",
          action: e.action,
          partition: e.detail["partition"] ?? "",
          seq: e.detail["seq"] ?? "",
          alg: e.detail["alg"] ?? "",
          revision: e.revision,
          cause: e.detail["cause"] ?? "",
        }));
    },
  };
}

/** The records carrying a hash value, each followed to the record it was merged into. */
async function lookupRecords(db: Queryable, codec: AvroCodec, q: HashQuery): Promise<FullRecord[]> {
  const { rows } = await db.query<{ record_id: string }>("SELECT record_id FROM record_hashes WHERE alg = ANY($1::text[]) AND value = $2", [
    [...q.algs],
    q.value,
  ]);
  const ids: string[] = [];
  for (const r of rows) {
    let id = r.record_id;
    // A merged record names its survivor; a chain of merges ends within a few steps.
    for (let i = 0; i < 10; i++) {
      if (!ids.includes(id)) ids.push(id);
      const next = await db.query<{ merged_into: string | null }>("SELECT merged_into FROM canonical_records WHERE record_id = $1", [id]);
      const into = next.rows[0]?.merged_into;
      if (!into) break;
      id = into;
    }
  }
  return Promise.all(ids.map((id) => readRecord(db, codec, id)));
}

async function readRecord(db: Queryable, codec: AvroCodec, recordId: string): Promise<FullRecord> {
  const [rec, hashes, sightings, holders, body] = await Promise.all([
    db.query<{
      revision: string;
      deleted: boolean;
      merged_into: string | null;
      content_type: string;
      first_seen_at: string;
      updated_at: string;
    }>(
      "SELECT revision::text, deleted, merged_into, content_type, first_seen_at::text, updated_at::text FROM canonical_records WHERE record_id = $1",
      [recordId],
    ),
    db.query<{ alg: string; value: string; quality: number | null }>(
      "SELECT alg, value, quality FROM record_hashes WHERE record_id = $1 ORDER BY alg, value",
      [recordId],
    ),
    db.query<{
      agency_id: string;
      op: string;
      uk: string;
      ics: string | null;
      submitter_status: string;
      submitted_at: string;
      restricted: Record<string, unknown>;
    }>(
      "SELECT agency_id, op, uk, ics, submitter_status, submitted_at::text, restricted FROM sightings WHERE record_id = $1 ORDER BY submitted_at",
      [recordId],
    ),
    part(() =>
      db.query<{ partner_id: string; alg: string; revision: string; category: string }>(
        "SELECT partner_id, alg, revision::text, category FROM feed_entries WHERE record_id = $1 ORDER BY partner_id, alg",
        [recordId],
      ),
    ),
    part(() => db.query<{ body: Buffer }>("SELECT body FROM distributed_records WHERE record_id = $1", [recordId])),
  ]);
  const r = rec.rows[0];
  if (!r) throw new Error(`record ${recordId} is named by a hash but missing from canonical_records`);
  const stored = body.ok ? body.value.rows[0]?.body : undefined;
  const canonical = stored ? codec.decode("CanonicalRecord", stored).value : null;
  return {
    recordId,
    revision: Number(r.revision),
    deleted: r.deleted,
    mergedInto: r.merged_into,
    contentType: r.content_type,
    firstSeenAt: Number(r.first_seen_at),
    updatedAt: Number(r.updated_at),
    hashes: hashes.rows,
    grading: canonical
      ? {
          uk: canonical.classification.uk,
          ics: canonical.classification.ics ?? null,
          status: canonical.gradingStatus,
          confirmations: canonical.confirmations,
          baseline: canonical.baseline,
        }
      : null,
    sightings: sightings.rows.map((s) => ({
      agencyId: s.agency_id,
      op: s.op,
      uk: s.uk,
      ics: s.ics,
      status: s.submitter_status,
      submittedAt: Number(s.submitted_at),
      restricted: s.restricted,
    })),
    holders: holders.ok
      ? holders.value.rows.map((h) => ({ partnerId: h.partner_id, alg: h.alg, revision: Number(h.revision), category: h.category }))
      : [],
  };
}
