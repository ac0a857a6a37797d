/**
 * Partner policies: which records a partner is entitled to, in which category scheme, with
 * which hash algorithms and extra fields. Pure functions, so the minimisation rules are tested
 * without a database. Anything not granted never leaves the hub (DESIGN guarantee 5).
 */
import type { CanonicalRecord, GradingStatus, HashAlg, UkCategory } from "../shared/wire/records.ts";

export type CategoryScheme = "uk" | "ics" | "vics";
export type Delivery = "kafka" | "s3" | "both";

/** Fields a policy may grant beyond hash, category and content type. */
export const EXTRA_FIELDS = [
  "gradingStatus",
  "confirmations",
  "baseline",
  "isDistributed",
  "victimIdentified",
  "offenderIdentified",
  "series",
  "caseRefs",
  "graderRefs",
  "agencies",
] as const;
export type ExtraField = (typeof EXTRA_FIELDS)[number];

/** Extras withheld by default: the record's law-enforcement-only part, and the contributing agencies. */
export const WITHHELD_BY_DEFAULT: readonly ExtraField[] = [
  "isDistributed",
  "victimIdentified",
  "offenderIdentified",
  "series",
  "caseRefs",
  "graderRefs",
  "agencies",
];

/**
 * The withheld-by-default extras a new policy grants that the current one does not: granting any of
 * them needs a second person's approval (`policies set --approved-by`). Keeping one already
 * granted, or narrowing, needs none.
 */
export function newlyGrantedWithheld(current: Pick<PartnerPolicy, "extraFields"> | undefined, next: readonly ExtraField[]): ExtraField[] {
  const held = new Set(current?.extraFields ?? []);
  return next.filter((f) => WITHHELD_BY_DEFAULT.includes(f) && !held.has(f));
}

export interface PartnerPolicy {
  readonly partnerId: string;
  readonly categories: readonly UkCategory[];
  readonly minGradingStatus: GradingStatus;
  readonly algorithms: readonly HashAlg[];
  readonly scheme: CategoryScheme;
  readonly extraFields: readonly ExtraField[];
  readonly delivery: Delivery;
  readonly feedPartitions: number;
  readonly version: number;
  /** Stop sending a record while a false-positive report about it is under review (absent: keep sending). */
  readonly withholdUnderReview?: boolean;
}

const STATUS_RANK: Record<GradingStatus, number> = { disputed: 0, indicative: 1, confirmed: 2 };

/** VICS has no severity: UK indecent categories are all VICS 1 (CSAM); the rest as in the ingest mapping. */
const UK_TO_VICS: Partial<Record<UkCategory, string>> = { A: "1", B: "1", C: "1", PROHIBITED_NONPHOTO: "3", NON_INDECENT: "0" };

/** The record's category in the partner's scheme, or null when it cannot be mapped (never guessed). */
export function categoryFor(record: CanonicalRecord, scheme: CategoryScheme): string | null {
  switch (scheme) {
    case "uk":
      return record.classification.uk === "UNGRADED" ? null : record.classification.uk;
    case "ics":
      return record.classification.ics;
    case "vics":
      return UK_TO_VICS[record.classification.uk] ?? null;
  }
}

export type Entitlement =
  | { readonly entitled: true; readonly category: string }
  | { readonly entitled: false; readonly unmappable: boolean };

export function entitlement(record: CanonicalRecord, policy: PartnerPolicy): Entitlement {
  if (record.deleted || record.mergedInto) return { entitled: false, unmappable: false };
  if (!policy.categories.includes(record.classification.uk)) return { entitled: false, unmappable: false };
  if (STATUS_RANK[record.gradingStatus] < STATUS_RANK[policy.minGradingStatus]) return { entitled: false, unmappable: false };
  const category = categoryFor(record, policy.scheme);
  return category === null ? { entitled: false, unmappable: true } : { entitled: true, category };
}

/** Only the granted extra fields, as strings. */
export function extrasFor(record: CanonicalRecord, policy: PartnerPolicy): Record<string, string> {
  const all: Record<ExtraField, string | null> = {
    gradingStatus: record.gradingStatus,
    confirmations: String(record.confirmations),
    baseline: String(record.baseline),
    isDistributed: record.restricted.isDistributed === null ? null : String(record.restricted.isDistributed),
    victimIdentified: record.restricted.victimIdentified === null ? null : String(record.restricted.victimIdentified),
    offenderIdentified: record.restricted.offenderIdentified === null ? null : String(record.restricted.offenderIdentified),
    series: record.restricted.series.length ? record.restricted.series.join(",") : null,
    caseRefs: record.restricted.caseRefs.length ? record.restricted.caseRefs.join(",") : null,
    graderRefs: record.restricted.graderRefs.length ? record.restricted.graderRefs.join(",") : null,
    agencies: record.provenance.agencies.join(","),
  };
  const out: Record<string, string> = {};
  for (const f of policy.extraFields) {
    const v = all[f];
    if (v !== null) out[f] = v;
  }
  return out;
}

/**
 * The hashes of a record that may reach any feed: all but its degenerate perceptual values (the
 * record's `degenerate` list, decided by dedup), which no partner receives under any policy.
 */
export function distributableHashes(record: CanonicalRecord): CanonicalRecord["hashes"] {
  if (record.degenerate.length === 0) return record.hashes;
  const out = new Set(record.degenerate.map((d) => `${d.alg}:${d.value}`));
  return record.hashes.filter((h) => !out.has(`${h.alg}:${h.value}`));
}

export interface FeedEntry {
  readonly alg: HashAlg;
  readonly value: string;
  readonly recordId: string;
  readonly revision: number;
  readonly category: string;
  readonly contentType: string;
  readonly extra: Record<string, string>;
}

export type FeedChange =
  | { readonly op: "UPSERT"; readonly entry: FeedEntry }
  | { readonly op: "REMOVE"; readonly entry: FeedEntry; readonly revision: number };

const sameExtra = (a: Record<string, string>, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** Whether a partner holding `have` already has what `want` would send (a new revision alone changes nothing). */
export const sameFeedEntry = (have: FeedEntry, want: FeedEntry): boolean =>
  have.recordId === want.recordId &&
  have.category === want.category &&
  have.contentType === want.contentType &&
  sameExtra(have.extra, want.extra);

function entryOf(
  record: CanonicalRecord,
  category: string,
  extra: Record<string, string>,
  h: CanonicalRecord["hashes"][number],
): FeedEntry {
  return {
    alg: h.alg,
    value: h.value,
    recordId: record.recordId,
    revision: record.revision,
    category,
    contentType: record.contentType,
    extra,
  };
}

/**
 * The entry this record gives the partner for one of its hashes ("alg:value"): when the record is
 * entitled and the algorithm granted, else null. Which record a hash goes to when several list it
 * is planner.ts's job.
 */
export function feedEntryFor(record: CanonicalRecord, policy: PartnerPolicy, hashKey: string): FeedEntry | null {
  const h = distributableHashes(record).find((x) => `${x.alg}:${x.value}` === hashKey);
  if (!h || !policy.algorithms.includes(h.alg)) return null;
  const ent = entitlement(record, policy);
  return ent.entitled ? entryOf(record, ent.category, extrasFor(record, policy), h) : null;
}
