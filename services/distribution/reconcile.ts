/**
 * Reconciliation: what a partner database must hold, computed from the canonical records alone
 * and the partner's policy, compared with what it does hold. The demo prints it and the tests
 * assert it: nothing lost, nothing extra, no wrong category.
 */
import type { Queryable } from "../shared/postgres.ts";
import type { CanonicalRecord } from "../shared/wire/records.ts";
import { claimsOfRevision, governsOver, splitHashKey } from "./planner.ts";
import { entitlement } from "./policy.ts";
import type { PartnerPolicy } from "./policy.ts";

export type Holdings = Map<string, string>; // "alg:value" -> category

/**
 * Latest revision per record wins; merged and deleted records grant nothing, degenerate values are
 * never held; a value listed by several live records goes by the governing one (planner.ts), which
 * grants nothing while under review to a partner whose policy withholds under review.
 */
export function expectedHoldings(
  policy: PartnerPolicy,
  records: Iterable<CanonicalRecord>,
  underReview: ReadonlySet<string> = new Set(),
): Holdings {
  const latest = new Map<string, CanonicalRecord>();
  for (const r of records) {
    const prior = latest.get(r.recordId);
    if (!prior || prior.revision < r.revision) latest.set(r.recordId, r);
  }
  const governor = new Map<string, CanonicalRecord>();
  for (const r of latest.values()) {
    for (const k of claimsOfRevision(r)) {
      const prior = governor.get(k);
      if (!prior || governsOver(r, prior)) governor.set(k, r);
    }
  }
  const out: Holdings = new Map();
  for (const [k, r] of governor) {
    if (policy.withholdUnderReview && underReview.has(r.recordId)) continue;
    const e = entitlement(r, policy);
    if (e.entitled && (policy.algorithms as readonly string[]).includes(splitHashKey(k).alg)) out.set(k, e.category);
  }
  return out;
}

export async function partnerHoldings(db: Queryable): Promise<Holdings> {
  const { rows } = await db.query<{ alg: string; value: string; category: string }>(
    "SELECT alg, value, category FROM partner_hashes WHERE NOT removed",
  );
  return new Map(rows.map((r) => [`${r.alg}:${r.value}`, r.category]));
}

export interface ReconciliationReport {
  readonly expected: number;
  readonly held: number;
  readonly missing: string[];
  readonly unexpected: string[];
  readonly wrongCategory: string[];
  readonly ok: boolean;
}

export function reconcile(expected: Holdings, held: Holdings): ReconciliationReport {
  const missing = [...expected.keys()].filter((k) => !held.has(k));
  const unexpected = [...held.keys()].filter((k) => !expected.has(k));
  const wrongCategory = [...expected].filter(([k, c]) => held.has(k) && held.get(k) !== c).map(([k]) => k);
  return {
    expected: expected.size,
    held: held.size,
    missing,
    unexpected,
    wrongCategory,
    ok: !missing.length && !unexpected.length && !wrongCategory.length,
  };
}
