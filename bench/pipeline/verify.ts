/**
 * The pipeline benchmark's checks before any figure is reported: the partner databases hold exactly
 * the expected rows, dedup applied every submission, every feed chain is contiguous, no sink alerts,
 * nothing on the dead-letter topic, every steady submission reached hotline-uk, no service restarted.
 */
import { WARMUP } from "./context.ts";
import type { Bench } from "./context.ts";
import type { Probes } from "./services.ts";
import type { Setup } from "./setup.ts";
import { log } from "./util.ts";

export async function verify(
  b: Bench,
  setup: Setup,
  probes: Probes,
  expectSteady: { hotline: number; industry: number },
  partnerAt: Float64Array,
): Promise<void> {
  const { args, steadyCount, res } = b;
  const { partnerDbs, names } = setup;
  const { count, partnerRows, highSum, hubCounts } = probes;
  log("  verifying the partner databases, feed chains and the DLQ...");
  const finalRows = await partnerRows();
  const problems: string[] = [];
  if (finalRows.hotline !== expectSteady.hotline)
    problems.push(`hotline holds ${finalRows.hotline} rows, expected ${expectSteady.hotline}`);
  if (finalRows.industry !== expectSteady.industry)
    problems.push(`industry holds ${finalRows.industry} rows, expected ${expectSteady.industry}`);
  const appliedTotal = (await hubCounts()).applied;
  if (appliedTotal !== WARMUP + args.count + steadyCount)
    problems.push(`dedup applied ${appliedTotal}, expected ${WARMUP + args.count + steadyCount}`);
  for (const [k, db] of Object.entries(partnerDbs)) {
    const { rows } = await db.pool.query<{ partition: number; n: number; max: number }>(
      "SELECT partition, count(*)::int AS n, max(seq)::int AS max FROM feed_applied GROUP BY partition",
    );
    for (const r of rows) if (r.n !== r.max) problems.push(`${k} feed partition ${r.partition}: ${r.n} applied, max seq ${r.max}`);
    const alerts = await count(db.pool, "SELECT count(*)::int AS n FROM sink_alerts");
    if (alerts) problems.push(`${k}: ${alerts} sink alerts`);
  }
  const rejected = await highSum(names.rejected);
  if (rejected) problems.push(`${rejected} records on ${names.rejected}`);
  if (partnerAt.some((v) => Number.isNaN(v))) problems.push("some steady submissions have no hotline row");
  const restarts = Object.entries(res.procs)
    .filter(([, p]) => p.restarts > 0)
    .map(([n, p]) => `${n} restarted ${p.restarts}×`);
  if (restarts.length) problems.push(...restarts);
  if (problems.length) throw new Error(`verification failed:\n  ${problems.join("\n  ")}`);
}
