/**
 * Grade consensus (DESIGN.md, Dedup rules): the grading authority's grade wins; otherwise the
 * category is the majority of graded sightings, ties going to the more severe, and the status
 * is confirmed when enough independent agencies agree, disputed when any disagree, indicative
 * otherwise. Pure: the same sightings always give the same answer, whichever instance computes it.
 */
import type { GradingStatus, IcsCategory, UkCategory } from "../shared/wire/records.ts";

export interface SightingGrade {
  readonly agencyId: string;
  readonly op: "ASSERT" | "RETRACT";
  readonly uk: UkCategory;
  readonly ics: IcsCategory | null;
  readonly submittedAt: number;
}

export interface ConsensusPolicy {
  /** Agencies whose grade is authoritative. */
  readonly authorities: ReadonlySet<string>;
  /** Independent agreeing agencies needed for "confirmed" (default 2). */
  readonly confirmations: number;
}

export interface Consensus {
  readonly withdrawn: boolean;
  readonly uk: UkCategory;
  readonly ics: IcsCategory | null;
  readonly gradingStatus: GradingStatus;
  readonly confirmations: number;
  readonly baseline: boolean;
  readonly agencies: string[];
}

/** Most severe first: ties in the vote go to the earlier one. */
export const UK_SEVERITY: readonly UkCategory[] = ["A", "B", "C", "PROHIBITED_NONPHOTO", "NON_INDECENT", "UNGRADED"];
const ICS_SEVERITY: readonly IcsCategory[] = ["A1", "A2", "B1", "B2"];

function majority<T>(values: readonly T[], severity: readonly T[]): T | null {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: T | null = null;
  let bestCount = 0;
  for (const v of severity) {
    const c = counts.get(v) ?? 0;
    if (c > bestCount) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

export function computeConsensus(sightings: readonly SightingGrade[], policy: ConsensusPolicy): Consensus {
  const asserting = sightings.filter((s) => s.op === "ASSERT");
  const authorityRetracted = sightings.some((s) => s.op === "RETRACT" && policy.authorities.has(s.agencyId));
  const agencies = [...new Set(asserting.map((s) => s.agencyId))].sort();
  const withdrawn = asserting.length === 0 || authorityRetracted;

  const authoritative = asserting
    .filter((s) => policy.authorities.has(s.agencyId) && s.uk !== "UNGRADED")
    .sort((a, b) => b.submittedAt - a.submittedAt)[0];
  const graded = asserting.filter((s) => s.uk !== "UNGRADED");

  let uk: UkCategory;
  let gradingStatus: GradingStatus;
  if (authoritative) {
    uk = authoritative.uk;
    gradingStatus = "confirmed";
  } else {
    uk =
      majority(
        graded.map((s) => s.uk),
        UK_SEVERITY,
      ) ?? "UNGRADED";
    const disagree = graded.some((s) => s.uk !== uk);
    const agreeing = new Set(graded.filter((s) => s.uk === uk).map((s) => s.agencyId)).size;
    gradingStatus = disagree ? "disputed" : agreeing >= policy.confirmations ? "confirmed" : "indicative";
  }
  const agreeing = graded.filter((s) => s.uk === uk);
  const ics =
    authoritative?.ics ??
    majority(
      agreeing.map((s) => s.ics).filter((c): c is IcsCategory => c !== null),
      ICS_SEVERITY,
    );
  return {
    withdrawn,
    uk,
    ics,
    gradingStatus,
    confirmations: new Set(agreeing.map((s) => s.agencyId)).size,
    // The industry baseline: prepubescent and a sex act, which ICS A1 denotes.
    baseline: ics === "A1",
    agencies,
  };
}
