/**
 * The dedup engine: applies verified submissions to an in-memory working set of canonical
 * records loaded for the batch. Pure and synchronous, so the rules are unit-tested without a
 * database; store.ts loads the working set and writes back what changed.
 *
 * Identity: any shared exact hash (any algorithm) joins a submission to a record; a submission
 * whose hashes hit two records merges them into the one first seen, and the absorbed one is
 * withdrawn with mergedInto. Near duplicates are linked separately (near-duplicates/).
 */
import { randomUUID } from "node:crypto";
import type { ReasonCode } from "../shared/errors.ts";
import type { CanonicalRecord, ContentType, Hash, LawEnforcementMetadata, Submission } from "../shared/wire/records.ts";
import { computeConsensus } from "./consensus.ts";
import type { ConsensusPolicy, SightingGrade } from "./consensus.ts";

export interface Sighting extends SightingGrade {
  readonly submissionId: string;
  readonly keyId: string;
  readonly submitterStatus: string;
  readonly restricted: LawEnforcementMetadata;
}

export interface RecordState {
  readonly recordId: string;
  recordNo: number | null;
  revision: number;
  deleted: boolean;
  mergedInto: string | null;
  contentType: ContentType;
  /** alg:value -> hash */
  hashes: Map<string, Hash>;
  sightings: Map<string, Sighting>;
  nearDuplicates: Set<string>;
  firstSeenAt: number;
  updatedAt: number;
  isNew: boolean;
  changed: boolean;
}

export interface WorkingSet {
  /** alg:value -> recordId that owned it when loaded (or since) */
  readonly recordByHash: Map<string, string>;
  readonly records: Map<string, RecordState>;
}

export type ApplyOutcome =
  | { readonly kind: "applied"; readonly recordIds: string[] }
  | { readonly kind: "rejected"; readonly reason: ReasonCode; readonly detail: string };

export const hashKey = (h: Pick<Hash, "alg" | "value">): string => `${h.alg}:${h.value}`;

/** Follows mergedInto to the record that now stands for this one. */
function survivorOf(ws: WorkingSet, recordId: string): RecordState | undefined {
  let rec = ws.records.get(recordId);
  for (let hops = 0; rec?.mergedInto && hops < 64; hops++) rec = ws.records.get(rec.mergedInto);
  return rec;
}

function recordsFor(ws: WorkingSet, hashes: readonly Hash[]): RecordState[] {
  const found = new Map<string, RecordState>();
  for (const h of hashes) {
    const id = ws.recordByHash.get(hashKey(h));
    const rec = id ? survivorOf(ws, id) : undefined;
    if (rec) found.set(rec.recordId, rec);
  }
  return [...found.values()].sort((a, b) => a.firstSeenAt - b.firstSeenAt || a.recordId.localeCompare(b.recordId));
}

function sightingOf(sub: Submission): Sighting {
  return {
    agencyId: sub.agencyId,
    op: sub.op,
    uk: sub.grade.uk,
    ics: sub.grade.ics,
    submittedAt: sub.submittedAt,
    submissionId: sub.submissionId,
    keyId: sub.keyId,
    submitterStatus: sub.gradingStatus,
    restricted: sub.lawEnforcement,
  };
}

function absorb(ws: WorkingSet, survivor: RecordState, absorbed: RecordState): void {
  for (const [k, h] of absorbed.hashes) {
    survivor.hashes.set(k, h);
    ws.recordByHash.set(k, survivor.recordId);
  }
  for (const [agency, s] of absorbed.sightings) {
    const mine = survivor.sightings.get(agency);
    if (!mine || mine.submittedAt < s.submittedAt) survivor.sightings.set(agency, s);
  }
  for (const n of absorbed.nearDuplicates) if (n !== survivor.recordId) survivor.nearDuplicates.add(n);
  survivor.firstSeenAt = Math.min(survivor.firstSeenAt, absorbed.firstSeenAt);
  absorbed.hashes = new Map();
  absorbed.sightings = new Map();
  absorbed.nearDuplicates = new Set();
  absorbed.mergedInto = survivor.recordId;
  absorbed.deleted = true;
  absorbed.changed = true;
  survivor.changed = true;
}

export function applySubmission(ws: WorkingSet, sub: Submission, now: number): ApplyOutcome {
  const matches = recordsFor(ws, sub.hashes);
  const incoming = sightingOf(sub);

  if (sub.op === "RETRACT") {
    if (matches.length === 0) {
      return { kind: "rejected", reason: "NOT_FOUND", detail: "retraction names no hash the hub holds" };
    }
    for (const rec of matches) {
      const prior = rec.sightings.get(sub.agencyId);
      if (prior && prior.submittedAt > sub.submittedAt) {
        return { kind: "rejected", reason: "STALE_SUBMISSION", detail: `older than ${sub.agencyId}'s sighting ${prior.submissionId}` };
      }
    }
    for (const rec of matches) {
      rec.sightings.set(sub.agencyId, incoming);
      rec.changed = true;
    }
    return { kind: "applied", recordIds: matches.map((r) => r.recordId) };
  }

  let target: RecordState;
  if (matches.length === 0) {
    target = {
      recordId: randomUUID(),
      recordNo: null,
      revision: 0,
      deleted: false,
      mergedInto: null,
      contentType: sub.contentType,
      hashes: new Map(),
      sightings: new Map(),
      nearDuplicates: new Set(),
      firstSeenAt: now,
      updatedAt: now,
      isNew: true,
      changed: true,
    };
    ws.records.set(target.recordId, target);
  } else {
    target = matches[0] as RecordState;
    const prior = target.sightings.get(sub.agencyId);
    if (prior && prior.submittedAt > sub.submittedAt) {
      return { kind: "rejected", reason: "STALE_SUBMISSION", detail: `older than ${sub.agencyId}'s sighting ${prior.submissionId}` };
    }
    for (const other of matches.slice(1)) absorb(ws, target, other);
  }
  for (const h of sub.hashes) {
    const k = hashKey(h);
    if (!target.hashes.has(k)) target.hashes.set(k, h);
    ws.recordByHash.set(k, target.recordId);
  }
  target.sightings.set(sub.agencyId, incoming);
  target.changed = true;
  return { kind: "applied", recordIds: [target.recordId, ...matches.slice(1).map((r) => r.recordId)] };
}

/** Links two records as near duplicates (both directions). */
export function linkNearDuplicates(ws: WorkingSet, a: string, b: string): void {
  const ra = survivorOf(ws, a);
  const rb = survivorOf(ws, b);
  if (!ra || !rb || ra.recordId === rb.recordId) return;
  if (!ra.nearDuplicates.has(rb.recordId)) {
    ra.nearDuplicates.add(rb.recordId);
    ra.changed = true;
  }
  if (!rb.nearDuplicates.has(ra.recordId)) {
    rb.nearDuplicates.add(ra.recordId);
    rb.changed = true;
  }
}

function restrictedOf(rec: RecordState): CanonicalRecord["restricted"] {
  const asserting = [...rec.sightings.values()].filter((s) => s.op === "ASSERT");
  const uniq = (xs: (string | null)[]) => [...new Set(xs.filter((x): x is string => !!x))].sort();
  const anyTrue = (xs: (boolean | null)[]) => (xs.some((x) => x === true) ? true : xs.some((x) => x === false) ? false : null);
  return {
    caseRefs: uniq(asserting.map((s) => s.restricted.caseRef)),
    series: uniq(asserting.map((s) => s.restricted.series)),
    victimIdentified: anyTrue(asserting.map((s) => s.restricted.victimIdentified)),
    offenderIdentified: anyTrue(asserting.map((s) => s.restricted.offenderIdentified)),
    isDistributed: anyTrue(asserting.map((s) => s.restricted.isDistributed)),
    graderRefs: uniq(asserting.map((s) => s.restricted.graderRef)),
  };
}

/**
 * Closes the batch: every changed record gets the next revision and its consensus recomputed.
 * Returns the canonical records to publish, in a stable order.
 */
export function finaliseChanges(ws: WorkingSet, policy: ConsensusPolicy, now: number): CanonicalRecord[] {
  const out: CanonicalRecord[] = [];
  for (const rec of ws.records.values()) {
    if (!rec.changed) continue;
    const consensus = computeConsensus([...rec.sightings.values()], policy);
    rec.revision += 1;
    rec.deleted = rec.mergedInto !== null || consensus.withdrawn;
    rec.updatedAt = now;
    out.push({
      recordId: rec.recordId,
      revision: rec.revision,
      deleted: rec.deleted,
      mergedInto: rec.mergedInto,
      contentType: rec.contentType,
      hashes: [...rec.hashes.values()].sort((a, b) => hashKey(a).localeCompare(hashKey(b))),
      classification: { uk: consensus.uk, ics: consensus.ics },
      gradingStatus: consensus.gradingStatus,
      baseline: consensus.baseline,
      confirmations: consensus.confirmations,
      provenance: { agencies: consensus.agencies, firstSeenAt: rec.firstSeenAt },
      restricted: restrictedOf(rec),
      nearDuplicates: [...rec.nearDuplicates].sort(),
      updatedAt: now,
    });
  }
  return out.sort((a, b) => a.recordId.localeCompare(b.recordId));
}
