/**
 * What the chaos run prints at the end: the schedule it ran (each fault as planned, when it fired,
 * what it hit), the counts of faults survived, what was submitted, each instance's kills, crashes
 * and memory, the lag, the reconciliation's figures and every difference; and for the soak, the
 * plot and a JSON of the samples under bench-results/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChaosArgs } from "./args.ts";
import type { FaultOutcome } from "./faults.ts";
import type { Fleet } from "./fleet.ts";
import { soakSvg } from "./plot.ts";
import type { Reconciliation } from "./reconcile.ts";
import type { MemoryChange, Sample } from "./samples.ts";
import { lagOverRun } from "./samples.ts";
import type { FaultEvent } from "./schedule.ts";
import { describeEvent, scheduleCounts } from "./schedule.ts";
import type { Ledger } from "./traffic.ts";

export function printReport(o: {
  args: ChaosArgs;
  schedule: readonly FaultEvent[];
  outcomes: readonly FaultOutcome[];
  ledger: Ledger;
  reconciliation: Reconciliation | null;
  fleet: Fleet;
  samples: readonly Sample[];
  memory: readonly MemoryChange[];
  problems: readonly string[];
  log: (line: string) => void;
}): boolean {
  const { log } = o;
  log(`\n▶ schedule (seed ${o.args.seed}): planned time, what, then when it fired and what it hit`);
  for (const out of o.outcomes) {
    const late = out.firedAt - out.event.at > 1_000 ? `, ${((out.firedAt - out.event.at) / 1000).toFixed(0)} s late (lane busy)` : "";
    log(
      `  ${describeEvent(out.event)}  -> ${out.hit}, fired ${(out.firedAt / 1000).toFixed(0)} s${late}, undone ${(out.undoneAt / 1000).toFixed(0)} s${out.error ? `  FAILED: ${out.error}` : ""}`,
    );
  }
  const survived = scheduleCounts(o.outcomes.filter((x) => !x.error).map((x) => x.event));
  const brokerKills = o.outcomes.filter((x) => !x.error && x.event.kind === "broker");
  log(
    `  faults survived: ${survived["kill-service"]} service kills, ${survived.broker} broker kills/restarts ` +
      `(${brokerKills.filter((x) => x.hit.includes("controller")).length} of the controller, ${brokerKills.filter((x) => x.hit.includes("leader")).length} of a partition leader), ` +
      `${survived["pg-restart"]} PostgreSQL restarts, ${survived["partner-db-pause"]} partner database pauses`,
  );
  const c = o.ledger.counts;
  log("\n▶ submitted");
  log(
    `  ${c.http} over HTTP (${c.new} new, ${c.confirm} confirmations, ${c.conflict} conflicting grades, ${c.regrade} regrades by the authority, ` +
      `${c.merge} merges, ${c.retract} retractions), ${c.imported} in ${c.imports} S3 imports (${c.importRestarts} restarted), ` +
      `${c.policyChanges} policy changes, ${o.ledger.badTokens.size} bad records; ${c.retries} retried sends`,
  );
  log("\n▶ instances: kills by the schedule, exits on their own (restarted), memory over the run after the warm-up");
  for (const i of o.fleet.all()) {
    const m = o.memory.find((x) => x.instance === i.spec.name);
    const mem = m
      ? `rss ${m.rss.start.toFixed(0)} -> ${m.rss.end.toFixed(0)} MB, heap ${m.heapUsed.start.toFixed(0)} -> ${m.heapUsed.end.toFixed(0)} MB`
      : "";
    log(`  ${i.spec.name.padEnd(22)} killed ${i.kills}, crashed ${i.crashes}  ${mem}`);
  }
  const lagMax: Record<string, number> = {};
  for (const s of o.samples) for (const [k, v] of Object.entries(s.lag)) if (v !== null) lagMax[k] = Math.max(lagMax[k] ?? 0, v);
  log(
    `  largest lag seen: ${Object.entries(lagMax)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );

  log("\n▶ reconciliation");
  let differences = 0;
  if (o.reconciliation) {
    for (const [k, v] of Object.entries(o.reconciliation.figures)) log(`  ${k}: ${v}`);
    for (const [k, v] of Object.entries(o.reconciliation.differences)) {
      differences += v;
      if (v) log(`  DIFFERENCE ${k}: ${v}`);
    }
    for (const e of o.reconciliation.examples) log(`    e.g. ${e}`);
    log(`  ${Object.keys(o.reconciliation.differences).length} checks, ${differences} differences`);
  } else log("  not reconciled: the pipeline did not settle");
  for (const p of o.problems) log(`  PROBLEM ${p}`);
  const passed = o.reconciliation !== null && differences === 0 && o.problems.length === 0;
  log(`\n${passed ? "PASSED" : "FAILED"}: ${differences} differences, ${o.problems.length} other problems`);
  return passed;
}

/** The soak's results: the samples and memory changes as JSON, and the plot. */
export function writeSoakResults(o: {
  args: ChaosArgs;
  stamp: string;
  samples: readonly Sample[];
  memory: readonly MemoryChange[];
  durationMs: number;
  /** Seconds since the start of the run at which a policy was changed. */
  policyChangesS: readonly number[];
  log: (line: string) => void;
}): void {
  mkdirSync(o.args.resultsDir, { recursive: true });
  const base = join(o.args.resultsDir, `chaos-soak-${o.stamp}`);
  const warmupS = Math.min((o.durationMs / 1000) * 0.2, 120);
  const worst = [...o.memory].sort((a, b) => b.rss.growthPct - a.rss.growthPct)[0];
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ args: o.args, warmupS, memory: o.memory, policyChangesS: o.policyChangesS, samples: o.samples }, null, 1)}\n`,
  );
  writeFileSync(
    `${base}.svg`,
    soakSvg({
      samples: o.samples,
      warmupS,
      policyChangesS: o.policyChangesS,
      title: `hashrelay soak: ${o.args.minutes} min, ${o.args.rate} submissions/s, ${o.args.instances} instances of each consumer service`,
      subtitle: [
        `${o.args.brokers} broker${o.args.brokers > 1 ? "s" : ""}, no faults; growth after the warm-up is measured between the first and last tenth of the window`,
        worst
          ? `largest resident-set growth: ${worst.instance} ${worst.rss.growthPct.toFixed(1)}% (${worst.rss.start.toFixed(0)} -> ${worst.rss.end.toFixed(0)} MB)`
          : "",
      ],
    }),
  );
  o.log(`\n  soak results: ${base}.svg and ${base}.json`);
  // Lag after the warm-up: the mean of its first and last third, so a backlog that grows shows;
  // then the same outside the bursts that policy changes cause, and those bursts.
  for (const stage of [...new Set(o.samples.flatMap((s) => Object.keys(s.lag)))]) {
    const lag = lagOverRun(o.samples, stage, o.policyChangesS, warmupS);
    const drained = lag.bursts.flatMap((b) => (b.drainS === null ? [] : [b.drainS]));
    const largest = [...lag.bursts].sort((a, b) => b.peak - a.peak)[0];
    o.log(
      `  lag ${stage.padEnd(18)} mean ${lag.all.first.toFixed(1)} -> ${lag.all.last.toFixed(1)}, max ${lag.all.max}; ` +
        `outside policy-change bursts ${lag.steady.first.toFixed(1)} -> ${lag.steady.last.toFixed(1)} (${lag.steady.readings} readings); ` +
        `${lag.bursts.length} bursts` +
        (largest
          ? `, drained in at most ${Math.max(0, ...drained).toFixed(0)} s, largest ${largest.peak} at ${largest.at.toFixed(0)} s` +
            (largest.drainS === null ? " (not drained)" : ` (drained in ${largest.drainS.toFixed(0)} s)`) +
            `, ${lag.bursts.length - drained.length} not drained`
          : ""),
    );
  }
  for (const m of o.memory)
    o.log(
      `  ${m.instance.padEnd(22)} rss ${signedPct(m.rss.growthPct)}, heap ${signedPct(m.heapUsed.growthPct)}, ` +
        `rss between bursts ${signedPct(m.rssFloor.growthPct)} (${m.rssFloor.start.toFixed(0)} -> ${m.rssFloor.end.toFixed(0)} MB)`,
    );
}

function signedPct(x: number): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(1)}%`;
}
