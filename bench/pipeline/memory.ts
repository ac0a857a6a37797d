/**
 * Memory of the service processes from /proc/<pid>/status (Linux): the resident set (VmRSS),
 * sampled on a timer so a run can show whether it stays flat or grows with the load, and the peak
 * (VmHWM, the kernel's high-water mark of the resident set since the process started, so nothing
 * between two samples is missed). A service the supervisor restarted is followed to its new pid;
 * its peak is then the larger of the two processes'.
 */
import { readFileSync } from "node:fs";
import type { ServiceProcess } from "../../test/support/processes.ts";

/** A process's resident set by kind of mapping, MB (2^20 bytes), from /proc/<pid>/smaps. */
export interface ResidentByMapping {
  readonly rssMb: number;
  /** V8's heap pages: anonymous mappings of exactly 256 KiB. */
  readonly v8Mb: number;
  readonly v8Pages: number;
  /** Other anonymous mappings: malloc's arenas and large blocks, thread stacks. */
  readonly anonMb: number;
  /** glibc's brk heap. */
  readonly brkMb: number;
  readonly fileMb: number;
}

/** Where a process's resident set is, to tell V8's page pool from malloc's memory. */
export function residentByMapping(pid: number | "self"): ResidentByMapping {
  const bytes = { v8: 0, anon: 0, brk: 0, file: 0 };
  let v8Pages = 0;
  let kind: keyof typeof bytes = "anon";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const size = Number.parseInt(head[2] as string, 16) - Number.parseInt(head[1] as string, 16);
      const name = head[3] ?? "";
      kind = name === "[heap]" ? "brk" : name.startsWith("/") ? "file" : name === "" && size === 256 * 1024 ? "v8" : "anon";
      if (kind === "v8") v8Pages++;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) bytes[kind] += Number(rss[1]) * 1024;
  }
  const mb = (n: number) => Math.round(n / 1048576);
  return {
    rssMb: mb(bytes.v8 + bytes.anon + bytes.brk + bytes.file),
    v8Mb: mb(bytes.v8),
    v8Pages,
    anonMb: mb(bytes.anon),
    brkMb: mb(bytes.brk),
    fileMb: mb(bytes.file),
  };
}

/** kB (KiB) as /proc reports them; null when the process is gone. */
export function procMemoryKb(pid: number | undefined): { rss: number; hwm: number } | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    const rss = field("VmRSS");
    const hwm = field("VmHWM");
    return Number.isFinite(rss) && Number.isFinite(hwm) ? { rss, hwm } : null;
  } catch {
    return null;
  }
}

export interface MemorySample {
  /** Epoch ms. */
  readonly t: number;
  /** Process name -> VmRSS in kB. */
  readonly rssKb: Record<string, number>;
}

export interface MemoryRecord {
  readonly samples: MemorySample[];
  /** Process name -> the largest VmHWM seen, in kB. */
  readonly peakKb: Record<string, number>;
  /** Takes a last sample and stops the timer; later calls do nothing. */
  stop(): void;
}

export function memorySampler(procs: Record<string, ServiceProcess>, everyMs = 1_000): MemoryRecord {
  const samples: MemorySample[] = [];
  const peakKb: Record<string, number> = {};
  const sample = () => {
    const rssKb: Record<string, number> = {};
    for (const [name, p] of Object.entries(procs)) {
      const m = procMemoryKb(p.child.pid);
      if (!m) continue;
      rssKb[name] = m.rss;
      peakKb[name] = Math.max(peakKb[name] ?? 0, m.hwm);
    }
    samples.push({ t: Date.now(), rssKb });
  };
  sample();
  const timer = setInterval(sample, everyMs);
  timer.unref();
  let stopped = false;
  return {
    samples,
    peakKb,
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      sample();
    },
  };
}

/**
 * Each process's VmRSS (kB) at fractions of the window [from, to] (epoch ms): the last sample at or
 * before each point, so 0 is the resident set as the window opened and 1 as it closed.
 */
export function rssAt(
  samples: readonly MemorySample[],
  from: number,
  to: number,
  fractions: readonly number[],
): Record<string, (number | null)[]> {
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.rssKb)))];
  const out: Record<string, (number | null)[]> = {};
  for (const name of names) {
    out[name] = fractions.map((f) => {
      const at = from + f * (to - from);
      let value: number | null = null;
      for (const s of samples) {
        if (s.t > at) break;
        value = s.rssKb[name] ?? value;
      }
      return value;
    });
  }
  return out;
}

/** The largest sampled VmRSS (kB) of each process in the window [from, to]. */
export function maxRss(samples: readonly MemorySample[], from: number, to: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.t < from || s.t > to) continue;
    for (const [name, kb] of Object.entries(s.rssKb)) out[name] = Math.max(out[name] ?? 0, kb);
  }
  return out;
}
