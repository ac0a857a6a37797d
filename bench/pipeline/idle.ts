/**
 * The idle phase of the pipeline benchmark (--idle-seconds N): with no traffic at all, a minute
 * after the services started, the CPU each process uses over N seconds (from /proc), as a share of
 * one core. Nothing is sent before or during it, so every CPU second it counts is the pipeline's
 * own polling, heartbeats and timers.
 */
import type { CpuSnapshot } from "./proc.ts";
import { cpuDelta } from "./proc.ts";
import { fmt, log, sleep } from "./util.ts";

/** How long after the services started the idle measurement begins. */
export const IDLE_AFTER_START_MS = 60_000;

export interface IdleResult {
  readonly seconds: number;
  readonly machineBusyPercent: number;
  /** Process (or group) -> percent of one core over the idle window. */
  readonly percentOfOneCore: Record<string, number>;
}

export async function idlePhase(seconds: number, servicesStartedAt: number, cpuSnapshot: () => Promise<CpuSnapshot>): Promise<IdleResult> {
  const wait = servicesStartedAt + IDLE_AFTER_START_MS - Date.now();
  log(
    `  0. idle: no traffic; measuring ${seconds} s of CPU per process ${fmt(IDLE_AFTER_START_MS / 1000)} s after the services started...`,
  );
  if (wait > 0) await sleep(wait);
  const a = await cpuSnapshot();
  await sleep(seconds * 1000);
  const d = cpuDelta(a, await cpuSnapshot());
  const percentOfOneCore = Object.fromEntries(Object.entries(d.perLabel).map(([label, v]) => [label, v.percentOfOneCore]));
  for (const [label, pct] of Object.entries(percentOfOneCore)) log(`     ${label.padEnd(44)} ${fmt(pct, 2)}% of a core`);
  return { seconds: d.seconds, machineBusyPercent: d.machineBusyPercent, percentOfOneCore };
}
