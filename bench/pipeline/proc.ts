/**
 * CPU accounting from /proc (Linux) for the pipeline benchmark: CPU seconds and run-queue wait per
 * process, and the machine's busy share. Readings of processes that are gone count as absent, never
 * as zero, so a finished process does not lower a group's total.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../services/shared/config.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import type { ServiceProcess } from "../../test/support/processes.ts";

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  /* keep 100 */
}

export function procCpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime + stime
  } catch {
    return null;
  }
}

/** A process's CPU milliseconds so far, for a process that must be there (a server backend on this host). */
export function procCpuMs(pid: number): number {
  const seconds = procCpuSeconds(pid);
  if (seconds === null) throw new Error(`no CPU reading for process ${pid}: is the server on this host?`);
  return seconds * 1000;
}

/** The milliseconds of a `process.cpuUsage()` reading, user and system together. */
export const cpuUsageMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

export function machineJiffies(): { busy: number; total: number } {
  try {
    const first = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const v = first.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "utf8");
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === ppid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** A local-stack process's pid, from the stack folder (HASHRELAY_STACK_DIR, as infra/stack.sh has it). */
export function pidFile(name: string): number | undefined {
  const f = join(process.env["HASHRELAY_STACK_DIR"] ?? join(REPO_ROOT, ".stack"), `${name}.pid`);
  if (!existsSync(f)) return undefined;
  const n = Number(readFileSync(f, "utf8").trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Time the process's live threads spent runnable but waiting for a CPU (schedstat, second field). */
export function runQueueWaitSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  let ns = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[1] ?? 0);
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return ns / 1e9;
}

/** This process's label: it stands in for the forces, sending and signing what they would. */
export const BENCH_LABEL = "bench process (this)";

/**
 * Labels of what runs outside the hub: the partner sinks and their PostgreSQL backends (at the
 * partners in production) and this process (the forces).
 */
function outsideHub(label: string): boolean {
  return label === BENCH_LABEL || label.startsWith("sink-") || label.startsWith("postgres backends of sink-");
}

export interface CpuSnapshot {
  at: number;
  machine: { busy: number; total: number };
  /** label -> pid -> cpu seconds and run-queue wait seconds so far */
  groups: Map<string, Map<number, { cpu: number; wait: number }>>;
}

/**
 * A function that reads the CPU time so far of the service processes, their PostgreSQL backends
 * (by application name, in the run's databases), the broker, the whole PostgreSQL server, this
 * process and the machine.
 */
export function cpuSampler(procs: Record<string, ServiceProcess>, pool: Pool, ourDbNames: string[]): () => Promise<CpuSnapshot> {
  const kafkaPid = pidFile("kafka");
  const pgPid = pidFile("pg");
  return async (): Promise<CpuSnapshot> => {
    const groupsMap: CpuSnapshot["groups"] = new Map();
    const add = (label: string, pid: number | undefined) => {
      const cpu = procCpuSeconds(pid);
      if (cpu === null || pid === undefined) return;
      const g = groupsMap.get(label) ?? new Map<number, { cpu: number; wait: number }>();
      g.set(pid, { cpu, wait: runQueueWaitSeconds(pid) });
      groupsMap.set(label, g);
    };
    for (const [name, p] of Object.entries(procs)) add(name, p.child.pid);
    const { rows } = await pool.query<{ pid: number; application_name: string }>(
      "SELECT pid, application_name FROM pg_stat_activity WHERE datname = ANY($1::text[]) AND application_name LIKE 'hashrelay-%'",
      [ourDbNames],
    );
    for (const r of rows)
      add(`postgres backends of ${r.application_name.replace(/^hashrelay-sink-.*?(hotline|industry).*$/, "sink-$1")}`, r.pid);
    add("kafka broker (shared)", kafkaPid);
    if (pgPid) {
      add("postgres server, all (shared)", pgPid);
      for (const c of childrenOf(pgPid)) add("postgres server, all (shared)", c);
    }
    add(BENCH_LABEL, process.pid);
    return { at: Date.now(), machine: machineJiffies(), groups: groupsMap };
  };
}

/** CPU used between two snapshots, per label, by this benchmark as a whole, and by the rest of the machine. */
export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot) {
  const seconds = (b.at - a.at) / 1000;
  const perLabel: Record<string, { cpuSeconds: number; percentOfOneCore: number; runQueueWaitSeconds: number }> = {};
  for (const [label, pids] of b.groups) {
    let cpu = 0;
    let wait = 0;
    for (const [pid, v] of pids) {
      const before = a.groups.get(label)?.get(pid);
      cpu += v.cpu - (before?.cpu ?? 0);
      wait += v.wait - (before?.wait ?? 0);
    }
    perLabel[label] = { cpuSeconds: cpu, percentOfOneCore: (100 * cpu) / seconds, runQueueWaitSeconds: wait };
  }
  const busy = b.machine.busy - a.machine.busy;
  const total = b.machine.total - a.machine.total;
  const machineBusyPercent = total > 0 ? (100 * busy) / total : NaN;
  // Everything of ours: the service processes, the bench, the broker and the whole PostgreSQL server (its backends included).
  const ours = Object.entries(perLabel)
    .filter(([l]) => !l.startsWith("postgres backends"))
    .reduce((n, [, v]) => n + v.cpuSeconds, 0);
  // The hub's part: the sinks' backends are inside the whole server's figure, so they come off it too.
  const hub = ours - Object.entries(perLabel).reduce((n, [l, v]) => n + (outsideHub(l) ? v.cpuSeconds : 0), 0);
  const machineCpuSeconds = (machineBusyPercent / 100) * cpus().length * seconds;
  return {
    seconds,
    machineBusyPercent,
    machineCpuSeconds,
    oursCpuSeconds: ours,
    hubCpuSeconds: hub,
    otherCpuSeconds: Math.max(0, machineCpuSeconds - ours),
    perLabel,
  };
}

export type CpuDelta = ReturnType<typeof cpuDelta>;
