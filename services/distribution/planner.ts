/**
 * The planning core of distribution: which canonical record governs each hash, and the feed
 * changes that take a partner from what it holds to what the latest revisions imply. Pure and
 * synchronous over a FeedLedger that the caller loads first (FeedWriter.load), so the ordering
 * rules are unit-tested without a database.
 *
 * Why per hash and not per record: hashes.canonical.v1 is keyed by recordId, so one record's
 * revisions arrive in order but different records' revisions interleave arbitrarily. After a merge
 * of M into S, S's merge revision (now listing M's hashes) can arrive before M's older revisions,
 * and M's merge revision (mergedInto S, no hashes) before S's. A plan that only compares a record
 * with the entries it owns lets a stale revision of M take a hash from S and M's merge revision
 * then remove it from the partner although S holds it.
 *
 * So distribution keeps, per hash, its claims: the live records (latest revision neither withdrawn
 * nor merged away) whose latest revision lists it (distributed_hashes) and does not mark it
 * degenerate. Dedup never leaves an exact hash in two live records, so once every revision has
 * arrived an exact hash has at most one claimant; while revisions are in flight it can have two.
 * A perceptual value is no identity: several live records (distinct pictures) may list one. Either
 * way the freshest revision (updatedAt, then recordId) governs: a merge revision is written after
 * anything the absorbed record said before. A value that turns degenerate is claimed by no record
 * from the revision that says so, so its entries are removed like a retracted hash's.
 * A record withdrawn or merged away claims nothing, so it never owns a hash. A partner holds a
 * hash exactly when its governing record entitles the partner to it, with that record's category,
 * content type, extras and pseudonym: the rule reconcile.ts applies to the latest revisions.
 * Whenever a record's revision is applied, every hash it claimed, claims now or owns in a feed is
 * planned again, so each feed always equals that rule over the revisions applied so far, in
 * whatever order they came.
 *
 * One exception to that rule: a governing record under an open review (a partner reported it as a
 * false positive; record_reviews) entitles no partner whose policy withholds under review. Opening
 * and deciding a review re-plan the record like a revision does, so those partners get a REMOVE
 * and, once the grading authority decides, whatever the record's latest revision implies.
 */
import type { CanonicalRecord } from "../shared/wire/records.ts";
import { distributableHashes, entitlement, feedEntryFor, sameFeedEntry } from "./policy.ts";
import type { FeedChange, FeedEntry, PartnerPolicy } from "./policy.ts";

/** "alg:value" */
export type HashKey = string;

export const hashKeyOf = (h: { readonly alg: string; readonly value: string }): HashKey => `${h.alg}:${h.value}`;

export function splitHashKey(key: HashKey): { alg: string; value: string } {
  const colon = key.indexOf(":");
  return { alg: key.slice(0, colon), value: key.slice(colon + 1) };
}

/** Can own hashes: neither withdrawn nor merged away (a merged record is only an alias of its survivor). */
export const isLive = (r: CanonicalRecord): boolean => !r.deleted && !r.mergedInto;

/** The hashes a record's revision claims: a live record's hashes but its degenerate perceptual values. */
export const claimsOfRevision = (r: CanonicalRecord): HashKey[] => (isLive(r) ? distributableHashes(r).map(hashKeyOf) : []);

/** Of two claimants of a hash, whether `a` governs rather than `b`: the fresher revision, ties to the lower recordId. */
export const governsOver = (a: CanonicalRecord, b: CanonicalRecord): boolean =>
  a.updatedAt !== b.updatedAt ? a.updatedAt > b.updatedAt : a.recordId < b.recordId;

const add = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => {
  const s = m.get(k);
  if (s) s.add(v);
  else m.set(k, new Set([v]));
};

/**
 * Distribution's state for one transaction: what was loaded from the database (as of the
 * transaction's start) and, layered over it, what this transaction changed. Reading something not
 * loaded throws, unless the ledger is `complete` (an empty store, as in unit tests).
 */
export class FeedLedger {
  readonly complete: boolean;

  constructor(complete: boolean = false) {
    this.complete = complete;
  }

  private readonly records = new Map<string, CanonicalRecord>();
  /** Record ids looked up and found nowhere: no revision of them has been applied. */
  private readonly absentRecords = new Set<string>();
  /** survivor -> records merged into it (loaded per survivor). */
  private readonly storedMerges = new Map<string, Set<string>>();
  /** merged record -> survivor, for merge revisions this transaction applied. */
  readonly changedMerges = new Map<string, string>();
  private readonly storedClaimsOf = new Map<string, Set<HashKey>>();
  private readonly storedClaimants = new Map<HashKey, Set<string>>();
  /** partner|hash -> entry (null: the partner holds nothing for it). */
  private readonly storedEntries = new Map<string, FeedEntry | null>();
  /** partner|recordId -> hashes the record owns in that feed. */
  private readonly storedOwned = new Map<string, Set<HashKey>>();
  /** recordId -> under an open review (loaded per record; changed when this transaction opens or closes one). */
  private readonly reviews = new Map<string, boolean>();

  /** recordId -> claims, for records whose claims this transaction replaced. */
  readonly changedClaims = new Map<string, Set<HashKey>>();
  private readonly changedClaimants = new Map<HashKey, Set<string>>();
  /** partner|hash -> entry (null: removed) changed by this transaction. */
  readonly changedEntries = new Map<string, FeedEntry | null>();
  private readonly changedOwned = new Map<string, Set<HashKey>>();

  // Loading (database state as of the transaction's start).

  hasRecord(recordId: string): boolean {
    return this.records.has(recordId) || this.absentRecords.has(recordId);
  }
  hasMergesInto(survivorId: string): boolean {
    return this.storedMerges.has(survivorId);
  }
  hasClaimsOf(recordId: string): boolean {
    return this.storedClaimsOf.has(recordId);
  }
  hasClaimants(hash: HashKey): boolean {
    return this.storedClaimants.has(hash);
  }
  hasEntry(partnerId: string, hash: HashKey): boolean {
    return this.storedEntries.has(`${partnerId}|${hash}`);
  }
  hasOwned(partnerId: string, recordId: string): boolean {
    return this.storedOwned.has(`${partnerId}|${recordId}`);
  }
  hasReview(recordId: string): boolean {
    return this.reviews.has(recordId);
  }
  /** Whether a record is under an open review, as loaded, or as this transaction leaves it. */
  setReview(recordId: string, open: boolean): void {
    this.reviews.set(recordId, open);
  }
  /** Every record whose body is known, for loading what else planning reads about them. */
  knownRecordIds(): string[] {
    return [...this.records.keys()];
  }
  /** A stored body; never replaces a newer revision. */
  addRecord(record: CanonicalRecord): void {
    const known = this.records.get(record.recordId);
    if (!known || known.revision < record.revision) this.records.set(record.recordId, record);
  }
  /** A record looked up and not found: nothing of it has been applied yet. */
  addAbsentRecord(recordId: string): void {
    if (!this.records.has(recordId)) this.absentRecords.add(recordId);
  }
  addMergesInto(survivorId: string, mergedIds: Iterable<string>): void {
    this.storedMerges.set(survivorId, new Set(mergedIds));
  }
  addClaimsOf(recordId: string, hashes: Iterable<HashKey>): void {
    this.storedClaimsOf.set(recordId, new Set(hashes));
  }
  addClaimants(hash: HashKey, recordIds: Iterable<string>): void {
    this.storedClaimants.set(hash, new Set(recordIds));
  }
  addEntry(partnerId: string, hash: HashKey, entry: FeedEntry | null): void {
    this.storedEntries.set(`${partnerId}|${hash}`, entry);
  }
  addOwned(partnerId: string, recordId: string, hashes: Iterable<HashKey>): void {
    this.storedOwned.set(`${partnerId}|${recordId}`, new Set(hashes));
  }

  // Reads (stored, overlaid with this transaction's changes).

  private missing(what: string): never {
    throw new Error(`distribution ledger: ${what} not loaded`);
  }

  /** The latest revision known of a record, if any. */
  knownRecord(recordId: string): CanonicalRecord | undefined {
    return this.records.get(recordId);
  }

  underReview(recordId: string): boolean {
    return this.reviews.get(recordId) ?? (this.complete ? false : this.missing(`review of ${recordId}`));
  }

  record(recordId: string): CanonicalRecord {
    return this.records.get(recordId) ?? this.missing(`record ${recordId}`);
  }

  /** The latest applied revision of a record, or null when none has been applied. */
  appliedRecord(recordId: string): CanonicalRecord | null {
    const r = this.records.get(recordId);
    if (r) return r;
    return this.absentRecords.has(recordId) || this.complete ? null : this.missing(`record ${recordId}`);
  }

  /** The records merged into a survivor. */
  mergedInto(survivorId: string): string[] {
    const stored = this.storedMerges.get(survivorId) ?? (this.complete ? new Set<string>() : this.missing(`merges into ${survivorId}`));
    const out = new Set(stored);
    for (const [merged, survivor] of this.changedMerges) if (survivor === survivorId) out.add(merged);
    return [...out];
  }

  claimsOf(recordId: string): ReadonlySet<HashKey> {
    const changed = this.changedClaims.get(recordId);
    if (changed) return changed;
    return this.storedClaimsOf.get(recordId) ?? (this.complete ? new Set() : this.missing(`claims of ${recordId}`));
  }

  claimants(hash: HashKey): string[] {
    const stored = this.storedClaimants.get(hash) ?? (this.complete ? new Set<string>() : this.missing(`claimants of ${hash}`));
    const out = [...stored].filter((id) => !this.changedClaims.has(id));
    for (const id of this.changedClaimants.get(hash) ?? []) out.push(id);
    return out;
  }

  entry(partnerId: string, hash: HashKey): FeedEntry | undefined {
    const k = `${partnerId}|${hash}`;
    if (this.changedEntries.has(k)) return this.changedEntries.get(k) ?? undefined;
    if (this.storedEntries.has(k)) return this.storedEntries.get(k) ?? undefined;
    return this.complete ? undefined : this.missing(`entry ${k}`);
  }

  ownedBy(partnerId: string, recordId: string): HashKey[] {
    const k = `${partnerId}|${recordId}`;
    const stored = this.storedOwned.get(k) ?? (this.complete ? new Set<HashKey>() : this.missing(`entries of ${k}`));
    const out = [...stored].filter((h) => !this.changedEntries.has(`${partnerId}|${h}`));
    for (const h of this.changedOwned.get(k) ?? []) out.push(h);
    return out;
  }

  // Writes.

  setRecord(record: CanonicalRecord): void {
    this.records.set(record.recordId, record);
    this.absentRecords.delete(record.recordId);
    if (record.mergedInto) this.changedMerges.set(record.recordId, record.mergedInto);
  }

  setClaims(recordId: string, hashes: Iterable<HashKey>): void {
    for (const h of this.changedClaims.get(recordId) ?? []) this.changedClaimants.get(h)?.delete(recordId);
    const next = new Set(hashes);
    this.changedClaims.set(recordId, next);
    for (const h of next) add(this.changedClaimants, h, recordId);
  }

  setEntry(partnerId: string, hash: HashKey, entry: FeedEntry | null): void {
    const k = `${partnerId}|${hash}`;
    const prior = this.changedEntries.get(k);
    if (prior) this.changedOwned.get(`${partnerId}|${prior.recordId}`)?.delete(hash);
    this.changedEntries.set(k, entry);
    if (entry) add(this.changedOwned, `${partnerId}|${entry.recordId}`, hash);
  }
}

/** The live claimant whose revision governs a hash, if any. */
export function governingRecord(ledger: FeedLedger, hash: HashKey): CanonicalRecord | undefined {
  let best: CanonicalRecord | undefined;
  for (const id of ledger.claimants(hash)) {
    const r = ledger.record(id);
    if (!isLive(r)) continue;
    if (!best || governsOver(r, best)) best = r;
  }
  return best;
}

/**
 * Whether a hash held under `owner`, which no live record claims, should stay put for now: the owner
 * was merged into a survivor whose merge revision (listing the owner's hashes) is not applied yet.
 * Dedup writes both revisions in one transaction but they travel on different partitions; removing
 * the hash meanwhile would take a known hash out of the partner's database until the survivor's
 * revision puts it back. Planning the survivor re-plans what its merged records still hold
 * (FeedLedger.mergedInto), so a survivor that turns out not to grant the hash removes it then.
 */
export function awaitingSurvivor(ledger: FeedLedger, owner: CanonicalRecord | undefined): boolean {
  if (!owner?.mergedInto) return false;
  const survivor = ledger.appliedRecord(owner.mergedInto);
  return !survivor || survivor.updatedAt < owner.updatedAt;
}

/** Whether the partner is kept from a record for now: it is under an open review and the policy withholds such records. */
export const withheldUnderReview = (ledger: FeedLedger, policy: PartnerPolicy, record: CanonicalRecord): boolean =>
  policy.withholdUnderReview === true && ledger.underReview(record.recordId);

/** The change (if any) that brings one partner's entry for one hash in line with its governing record. */
export function planHash(ledger: FeedLedger, policy: PartnerPolicy, hash: HashKey): FeedChange | null {
  const governor = governingRecord(ledger, hash);
  const want = governor && !withheldUnderReview(ledger, policy, governor) ? feedEntryFor(governor, policy, hash) : null;
  const have = ledger.entry(policy.partnerId, hash);
  if (want) return have && sameFeedEntry(have, want) ? null : { op: "UPSERT", entry: want };
  if (!have) return null;
  const owner = ledger.knownRecord(have.recordId);
  if (!governor && awaitingSurvivor(ledger, owner)) return null;
  return { op: "REMOVE", entry: have, revision: owner?.revision ?? have.revision };
}

export interface PartnerPlan {
  readonly policy: PartnerPolicy;
  readonly changes: FeedChange[];
  /** The record is entitled but its category cannot be mapped to the partner's scheme. */
  readonly unmappable: boolean;
}

/**
 * Applies a record's revision (newer than any applied before, or the stored one again when a
 * policy is reconciled) to the ledger, and plans every partner's changes: each hash the record
 * claimed, claims now or owns in the partner's feed goes to its governing record. The changes are
 * already applied to the ledger's entries; the caller signs and writes them in order.
 */
export function planRecord(ledger: FeedLedger, record: CanonicalRecord, policies: readonly PartnerPolicy[]): PartnerPlan[] {
  const prior = ledger.claimsOf(record.recordId);
  const claims = claimsOfRevision(record);
  ledger.setRecord(record);
  if (claims.length !== prior.size || claims.some((h) => !prior.has(h))) ledger.setClaims(record.recordId, claims);
  return policies.map((policy) => {
    const affected = new Set<HashKey>([...claims, ...prior, ...ledger.ownedBy(policy.partnerId, record.recordId)]);
    // Hashes still held under records merged into this one (waiting for this revision).
    for (const merged of ledger.mergedInto(record.recordId)) for (const h of ledger.ownedBy(policy.partnerId, merged)) affected.add(h);
    const changes: FeedChange[] = [];
    for (const hash of affected) {
      const change = planHash(ledger, policy, hash);
      if (!change) continue;
      changes.push(change);
      ledger.setEntry(policy.partnerId, hash, change.op === "UPSERT" ? change.entry : null);
    }
    const ent = entitlement(record, policy);
    return { policy, changes, unmappable: !ent.entitled && ent.unmappable };
  });
}
