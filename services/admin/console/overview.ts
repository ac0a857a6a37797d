/**
 * The console's judgements, pure and unit-tested: which partner alerts are open, what state a key
 * is in, the DLQ grouped by reason, throughput from successive positions, and which fields of a
 * record a role may see. reads.ts gathers the facts; views.ts only lays them out.
 */
import type { PartnerFeedLag, ExportStatus, FeedHead } from "../../distribution/feed-state.ts";
import type { PolicyListing } from "../../distribution/policy-store.ts";
import type { Rejection } from "../../shared/wire/records.ts";
import type { ConsoleRole } from "./auth.ts";

export interface AlertThresholds {
  /** Feed records a Kafka partner may be behind before the console flags it. */
  readonly partnerLag: number;
  /** Age past which an S3 partner's latest export is stale; 0: exports are off, never stale. */
  readonly exportMaxAgeSeconds: number;
  /** A key (or an owner's run of keys) ending within this many days is flagged. */
  readonly keyWarningDays: number;
}

export interface PartnerStatus {
  readonly partnerId: string;
  readonly name: string;
  readonly listing: PolicyListing;
  readonly heads: readonly FeedHead[];
  /** null: S3-only partner, or the lag could not be read (see `errors`). */
  readonly lag: PartnerFeedLag | null;
  readonly exportStatus: ExportStatus | null;
  /** Hashes the partner holds now (feed_entries). */
  readonly holdings: number;
  readonly unmappable: number;
  readonly errors: readonly string[];
}

/** The open alerts of one partner, most serious first. */
export function partnerAlerts(p: PartnerStatus, t: AlertThresholds): string[] {
  const alerts: string[] = [];
  if (p.lag?.lost) alerts.push("LOST: records it never read fell out of the feed's retention; re-bootstrap it from a snapshot");
  if (p.listing.suspension) alerts.push(`suspended since ${p.listing.suspension.at.toISOString()}: ${p.listing.suspension.reason}`);
  const lag = totalLag(p.lag);
  if (lag !== null && lag > t.partnerLag) alerts.push(`lag ${lag} feed records, over ${t.partnerLag}`);
  if (p.lag?.partitions.some((x) => x.state === "never-read")) alerts.push("its sink has never read some partitions");
  const age = p.exportStatus?.ageSeconds;
  if (age !== undefined && t.exportMaxAgeSeconds > 0 && age > t.exportMaxAgeSeconds) {
    alerts.push(Number.isFinite(age) ? `latest S3 export is ${Math.round(age)} s old` : "no S3 export written yet");
  }
  for (const e of p.errors) alerts.push(`could not read: ${e}`);
  return alerts;
}

export const totalLag = (lag: PartnerFeedLag | null): number | null => (lag ? lag.partitions.reduce((n, x) => n + x.lag, 0) : null);

export interface KeyRow {
  readonly keyId: string;
  readonly ownerKind: string;
  readonly ownerId: string;
  readonly validFrom: Date;
  readonly validUntil: Date | null;
  readonly revokedAt: Date | null;
}

export type KeyState = "valid" | "expiring" | "expired" | "revoked" | "not-yet-valid";

export function keyState(k: KeyRow, now: Date, warningDays: number): KeyState {
  if (k.revokedAt && k.revokedAt <= now) return "revoked";
  if (k.validFrom > now) return "not-yet-valid";
  if (k.validUntil && k.validUntil <= now) return "expired";
  if (k.validUntil && k.validUntil.getTime() - now.getTime() < warningDays * 86_400_000) return "expiring";
  return "valid";
}

export interface DlqGroup {
  readonly reason: string;
  readonly service: string;
  readonly count: number;
  readonly oldest: number;
  readonly newest: number;
}

/** Rejections counted by reason and the service that refused them, most numerous first. */
export function groupRejections(rejections: readonly Pick<Rejection, "reason" | "service" | "rejectedAt">[]): DlqGroup[] {
  const groups = new Map<string, { reason: string; service: string; count: number; oldest: number; newest: number }>();
  for (const r of rejections) {
    const key = `${r.reason}\u0000${r.service}`;
    const g = groups.get(key) ?? { reason: r.reason, service: r.service, count: 0, oldest: r.rejectedAt, newest: r.rejectedAt };
    g.count++;
    g.oldest = Math.min(g.oldest, r.rejectedAt);
    g.newest = Math.max(g.newest, r.rejectedAt);
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason) || a.service.localeCompare(b.service));
}

/**
 * Throughput from successive readings of a position that only grows (a stage's stored offsets, a
 * sink's committed ones): messages per second over the readings of the last `windowMs`. null until
 * two readings far enough apart exist; a position that went back (a reset) restarts the series.
 */
export class RateTracker {
  private readonly readings = new Map<string, { at: number; position: number }[]>();
  private readonly windowMs: number;
  constructor(windowMs = 60_000) {
    this.windowMs = windowMs;
  }
  record(key: string, position: number, at: number): void {
    const list = this.readings.get(key) ?? [];
    const last = list[list.length - 1];
    if (last && position < last.position) list.length = 0;
    list.push({ at, position });
    while (list.length > 2 && (list[1] as { at: number }).at <= at - this.windowMs) list.shift();
    this.readings.set(key, list);
  }
  perSecond(key: string): number | null {
    const list = this.readings.get(key) ?? [];
    const first = list[0];
    const last = list[list.length - 1];
    if (!first || !last || last.at - first.at < 1_000) return null;
    return ((last.position - first.position) * 1000) / (last.at - first.at);
  }
}

/** A canonical record with everything the hub holds about it; `restricted` and `agencies` are law-enforcement-only. */
export interface FullRecord {
  readonly recordId: string;
  readonly revision: number;
  readonly deleted: boolean;
  readonly mergedInto: string | null;
  readonly contentType: string;
  readonly firstSeenAt: number;
  readonly updatedAt: number;
  readonly hashes: readonly { alg: string; value: string; quality: number | null }[];
  /** From the latest revision distribution holds; null when it has not seen the record. */
  readonly grading: { uk: string; ics: string | null; status: string; confirmations: number; baseline: boolean } | null;
  readonly sightings: readonly {
    agencyId: string;
    op: string;
    uk: string;
    ics: string | null;
    status: string;
    submittedAt: number;
    restricted: Record<string, unknown>;
  }[];
  readonly holders: readonly { partnerId: string; alg: string; revision: number; category: string }[];
}

export interface Disclosure {
  readonly at: number;
  readonly partnerId: string;
  readonly action: string;
  readonly partition: string;
  readonly seq: string;
  readonly alg: string;
  readonly revision: number | null;
  readonly cause: string;
}

/** A record as a role may see it: without the law-enforcement-only part unless the role has it. */
export interface VisibleRecord extends Omit<FullRecord, "sightings"> {
  readonly sightings: readonly {
    op: string;
    uk: string;
    ics: string | null;
    status: string;
    submittedAt: number;
    /** Law-enforcement roles only. */
    agencyId?: string;
    restricted?: Record<string, unknown>;
  }[];
}

export function visibleRecord(r: FullRecord, role: ConsoleRole): VisibleRecord {
  return {
    ...r,
    sightings: r.sightings.map((s) =>
      role.lawEnforcementFields ? s : { op: s.op, uk: s.uk, ics: s.ics, status: s.status, submittedAt: s.submittedAt },
    ),
  };
}

export type HashQuery = { readonly algs: readonly string[]; readonly value: string };

/**
 * What a typed hash can be: hex by length (a 64-hex value is SHA-256 or PDQ: both are looked up),
 * base64 of 144 bytes for PhotoDNA. null for anything else, which is refused without a query.
 */
export function parseHashQuery(input: string, alg?: string): HashQuery | null {
  const v = input.trim();
  if (/^[0-9a-fA-F]+$/.test(v)) {
    const byLength: Record<number, string[]> = { 32: ["md5"], 40: ["sha1"], 64: ["sha256", "pdq"] };
    const algs = byLength[v.length];
    if (!algs) return null;
    if (alg && !algs.includes(alg)) return null;
    return { algs: alg ? [alg] : algs, value: v.toLowerCase() };
  }
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(v) && Buffer.from(v, "base64").length === 144 && (!alg || alg === "photodna")) {
    return { algs: ["photodna"], value: v };
  }
  return null;
}
