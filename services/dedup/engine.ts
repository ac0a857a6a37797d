/**
 * The dedup engine: applies verified submissions to an in-memory working set of canonical
 * records loaded for the batch. Pure and synchronous, so the rules are unit-tested without a
 * database; store.ts loads the working set and writes back what changed.
 *
 * Identity: only a shared exact (cryptographic) hash joins a submission to a record; a submission
 * whose exact hashes hit two records merges them into the one first seen, and the absorbed one is
 * withdrawn with mergedInto. Perceptual values never join, even when equal: distinct pictures share
 * them. They are linked as near duplicates separately (near-duplicate-linker.ts), unless degenerate
 * (degenerate.ts): the working set counts the distinct records carrying each perceptual value of
 * the batch, and a value that reaches the threshold becomes degenerate on every record carrying it.
 */
import { randomUUID } from "node:crypto";
import type { ReasonCode } from "../shared/errors.ts";
import { hashAlgorithm } from "../shared/wire/hash-algorithms.ts";
import type { CanonicalRecord, ContentType, DegenerateReason, Hash, LawEnforcementMetadata, Submission } from "../shared/wire/records.ts";
import { computeConsensus } from "./consensus.ts";
import type { ConsensusPolicy, SightingGrade } from "./consensus.ts";
import { intrinsicDegeneracy, isSharedByMany } from "./degenerate.ts";

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

/** A degenerate perceptual value as the store keeps it. */
export interface Degeneracy {
  readonly alg: Hash["alg"];
  readonly value: string;
  readonly reason: DegenerateReason;
  /** Distinct canonical records carrying it, as last counted. */
  records: number;
  readonly firstSeenAt: number;
  /** Became degenerate in this batch (not yet stored). */
  readonly isNew: boolean;
}

export interface WorkingSet {
  /** alg:value of an exact hash -> recordId that owned it when loaded (or since) */
  readonly recordByHash: Map<string, string>;
  readonly records: Map<string, RecordState>;
  /** alg:value of a perceptual value -> distinct records carrying it in the store when loaded (loadPerceptual). */
  readonly perceptualStored: Map<string, number>;
  /** alg:value of a perceptual value -> records carrying it since it was loaded, minus merged-away duplicates. */
  readonly perceptualDelta: Map<string, number>;
  /** alg:value -> degenerate status, for every perceptual value whose status was looked up. */
  readonly degenerate: Map<string, Degeneracy>;
  /** Perceptual values whose degenerate status was looked up (degenerate or not). */
  readonly degenerateKnown: Set<string>;
}

export type ApplyOutcome =
  | { readonly kind: "applied"; readonly recordIds: string[] }
  | { readonly kind: "rejected"; readonly reason: ReasonCode; readonly detail: string };

export const hashKey = (h: Pick<Hash, "alg" | "value">): string => `${h.alg}:${h.value}`;

/** Whether a hash identifies its record: an exact (cryptographic) algorithm. */
export const isIdentity = (h: Pick<Hash, "alg">): boolean => hashAlgorithm(h.alg).match.kind === "exact";

export function emptyWorkingSet(): WorkingSet {
  return {
    recordByHash: new Map(),
    records: new Map(),
    perceptualStored: new Map(),
    perceptualDelta: new Map(),
    degenerate: new Map(),
    degenerateKnown: new Set(),
  };
}

const bump = (m: Map<string, number>, k: string, by: number) => m.set(k, (m.get(k) ?? 0) + by);

/** Follows mergedInto to the record that now stands for this one. */
function survivorOf(ws: WorkingSet, recordId: string): RecordState | undefined {
  let rec = ws.records.get(recordId);
  for (let hops = 0; rec?.mergedInto && hops < 64; hops++) rec = ws.records.get(rec.mergedInto);
  return rec;
}

/** The records a submission's exact hashes name (perceptual values never identify a record). */
function recordsFor(ws: WorkingSet, hashes: readonly Hash[]): RecordState[] {
  const found = new Map<string, RecordState>();
  for (const h of hashes) {
    if (!isIdentity(h)) continue;
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
    if (!isIdentity(h) && survivor.hashes.has(k)) bump(ws.perceptualDelta, k, -1); // two carriers become one
    survivor.hashes.set(k, h);
    if (isIdentity(h)) ws.recordByHash.set(k, survivor.recordId);
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

/**
 * The records a RETRACT without a known exact hash reaches: those carrying one of its perceptual
 * values on which the retracting agency has a sighting (a perceptual value alone never names
 * another agency's record).
 */
function ownRecordsByPerceptual(ws: WorkingSet, sub: Submission): RecordState[] {
  const keys = new Set(sub.hashes.filter((h) => !isIdentity(h)).map(hashKey));
  if (keys.size === 0) return [];
  return [...ws.records.values()]
    .filter((r) => !r.mergedInto && r.sightings.has(sub.agencyId) && [...r.hashes.keys()].some((k) => keys.has(k)))
    .sort((a, b) => a.firstSeenAt - b.firstSeenAt || a.recordId.localeCompare(b.recordId));
}

/** The agency's newest sighting on any of these records (a merge keeps the newest of each agency). */
function newestSighting(records: readonly RecordState[], agencyId: string): Sighting | undefined {
  let newest: Sighting | undefined;
  for (const rec of records) {
    const s = rec.sightings.get(agencyId);
    if (s && (!newest || s.submittedAt > newest.submittedAt)) newest = s;
  }
  return newest;
}

/** Whether an assertion on these records merges two of them or brings a hash none of them carries. */
function addsIdentity(records: readonly RecordState[], sub: Submission): boolean {
  return records.length > 1 || sub.hashes.some((h) => !records.some((r) => r.hashes.has(hashKey(h))));
}

export function applySubmission(ws: WorkingSet, sub: Submission, now: number): ApplyOutcome {
  const exact = recordsFor(ws, sub.hashes);
  const incoming = sightingOf(sub);

  if (sub.op === "RETRACT") {
    const matches = exact.length > 0 ? exact : ownRecordsByPerceptual(ws, sub);
    if (matches.length === 0) {
      return { kind: "rejected", reason: "NOT_FOUND", detail: "retraction names no hash the hub holds" };
    }
    // Each record keeps the agency's newest sighting: a retraction older than it on one record
    // still reaches the others, as it would have, applied in order.
    const current = matches.filter((rec) => !((rec.sightings.get(sub.agencyId)?.submittedAt ?? -Infinity) > sub.submittedAt));
    if (current.length === 0) {
      const prior = newestSighting(matches, sub.agencyId);
      return { kind: "rejected", reason: "STALE_SUBMISSION", detail: `older than ${sub.agencyId}'s sighting ${prior?.submissionId}` };
    }
    for (const rec of current) {
      rec.sightings.set(sub.agencyId, incoming);
      rec.changed = true;
    }
    return { kind: "applied", recordIds: current.map((r) => r.recordId) };
  }

  const matches = exact;
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
    // Submissions naming one record by different hashes sit on different partitions, so an agency's
    // newer sighting may be applied first. Its grade and metadata then win, but the older one's
    // hashes and merges are facts of identity that in-order application would have kept: they are
    // applied all the same, and only a stale submission that adds nothing is refused.
    const prior = newestSighting(matches, sub.agencyId);
    if (prior && prior.submittedAt > sub.submittedAt && !addsIdentity(matches, sub)) {
      return { kind: "rejected", reason: "STALE_SUBMISSION", detail: `older than ${sub.agencyId}'s sighting ${prior.submissionId}` };
    }
    for (const other of matches.slice(1)) absorb(ws, target, other);
  }
  for (const h of sub.hashes) {
    const k = hashKey(h);
    if (isIdentity(h)) ws.recordByHash.set(k, target.recordId);
    else if (!target.hashes.has(k)) bump(ws.perceptualDelta, k, 1);
    if (!target.hashes.has(k)) target.hashes.set(k, h);
  }
  const prior = target.sightings.get(sub.agencyId);
  if (!prior || prior.submittedAt <= sub.submittedAt) target.sightings.set(sub.agencyId, incoming);
  target.changed = true;
  return { kind: "applied", recordIds: [target.recordId, ...matches.slice(1).map((r) => r.recordId)] };
}

/** Why a perceptual hash of a record is degenerate, or null; its status must have been looked up. */
export function degeneracyOf(ws: WorkingSet, h: Hash): DegenerateReason | null {
  if (isIdentity(h)) return null;
  const k = hashKey(h);
  if (!ws.degenerateKnown.has(k)) throw new Error(`degenerate status of ${h.alg} value not loaded`);
  return ws.degenerate.get(k)?.reason ?? intrinsicDegeneracy(h);
}

/** Whether a hash takes part in near-duplicate matching: perceptual and not degenerate. */
export const isMatchable = (ws: WorkingSet, h: Hash): boolean => !isIdentity(h) && degeneracyOf(ws, h) === null;

/**
 * Decides, for every perceptual value of the batch's changed records whose carriers were counted
 * (perceptualStored), whether it is degenerate now: by its value and quality, or because it sits on
 * `threshold` or more distinct records. Returns the values that became degenerate in this batch;
 * the caller loads every record carrying a SHARED one and calls reviseCarriers.
 */
export function settleDegenerate(ws: WorkingSet, threshold: number, now: number): Degeneracy[] {
  const fresh: Degeneracy[] = [];
  for (const rec of ws.records.values()) {
    if (!rec.changed) continue;
    for (const [k, h] of rec.hashes) {
      const stored = ws.perceptualStored.get(k);
      if (stored === undefined || isIdentity(h)) continue;
      const records = stored + (ws.perceptualDelta.get(k) ?? 0);
      const known = ws.degenerate.get(k);
      if (known) {
        known.records = records;
        continue;
      }
      const reason = intrinsicDegeneracy(h) ?? (isSharedByMany(records, threshold) ? "SHARED" : null);
      if (!reason) continue;
      const d: Degeneracy = { alg: h.alg, value: h.value, reason, records, firstSeenAt: now, isNew: true };
      ws.degenerate.set(k, d);
      ws.degenerateKnown.add(k);
      fresh.push(d);
    }
  }
  return fresh;
}

/**
 * Gives every live record in the working set that carries one of these values a new revision, so
 * the value's new status reaches distribution (which removes it from the feeds that held it).
 */
export function reviseCarriers(ws: WorkingSet, keys: ReadonlySet<string>): void {
  for (const rec of ws.records.values()) {
    if (rec.mergedInto || rec.deleted) continue;
    for (const k of rec.hashes.keys()) if (keys.has(k)) rec.changed = true;
  }
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

function degenerateOf(ws: WorkingSet, rec: RecordState): CanonicalRecord["degenerate"] {
  const out: CanonicalRecord["degenerate"] = [];
  for (const h of rec.hashes.values()) {
    const reason = degeneracyOf(ws, h);
    if (reason) out.push({ alg: h.alg, value: h.value, reason });
  }
  return out.sort((a, b) => hashKey(a).localeCompare(hashKey(b)));
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
      degenerate: degenerateOf(ws, rec),
      updatedAt: now,
    });
  }
  return out.sort((a, b) => a.recordId.localeCompare(b.recordId));
}
