/**
 * What the chaos run and its soak mode sample while they run: each stage's lag (messages on its
 * topic past the offsets it stored in PostgreSQL) and each service instance's resident set, every
 * few seconds; and, at the end, each instance's resident set and V8 heap at the start and end of
 * the measured window (after the warm-up), from what heap-probe.ts wrote.
 */
import type { Admin } from "kafkajs";
import type { Pool } from "../../services/shared/postgres.ts";
import { procMemoryKb } from "../../bench/pipeline/memory.ts";
import type { Fleet, HeapReading } from "./fleet.ts";

export interface Stage {
  readonly name: string;
  readonly pool: Pool;
  readonly group: string;
  readonly topic: string;
}

export interface Sample {
  /** Seconds since the start of the run. */
  readonly t: number;
  /** Stage -> messages behind (null when it could not be read: a broker or the database down). */
  readonly lag: Record<string, number | null>;
  /** Instance -> resident set, MB (absent while it is down). */
  readonly rssMb: Record<string, number>;
}

export async function stageLag(admin: Admin, s: Stage): Promise<number> {
  const ends = await admin.fetchTopicOffsets(s.topic);
  const { rows } = await s.pool.query<{ partition: number; next_offset: string }>(
    "SELECT partition, next_offset::text FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
    [s.group, s.topic],
  );
  const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
  return ends.reduce((n, e) => n + Math.max(0, Number(e.high) - (stored.get(e.partition) ?? 0)), 0);
}

/** Samples every `everyMs` until stopped; a reading that fails is recorded as null, never as 0. */
export function startSampling(o: { admin: Admin; stages: readonly Stage[]; fleet: Fleet; t0: number; everyMs: number }): {
  readonly samples: Sample[];
  stop(): Promise<void>;
} {
  const samples: Sample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const lag: Record<string, number | null> = {};
      for (const s of o.stages) lag[s.name] = await withTimeout(stageLag(o.admin, s), 5_000).catch(() => null);
      const rssMb: Record<string, number> = {};
      for (const i of o.fleet.all()) {
        const m = procMemoryKb(i.child?.pid);
        if (m) rssMb[i.spec.name] = m.rss / 1024;
      }
      samples.push({ t: (Date.now() - o.t0) / 1000, lag, rssMb });
      while (!stopped && Date.now() - started < o.everyMs) await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms))]);
}

export interface MemoryChange {
  readonly instance: string;
  /** MB at the start and the end of the window, and the growth in per cent of the start. */
  readonly rss: { start: number; end: number; growthPct: number };
  readonly heapUsed: { start: number; end: number; growthPct: number };
}

/**
 * Each instance's memory over [from, to] (epoch ms): the mean of the readings in the first and
 * the last tenth of the window (one reading is noise: a collection may just have run). Readings
 * of a process that was replaced are left out, so a kill does not look like a drop.
 */
export function memoryChanges(fleet: Fleet, from: number, to: number): MemoryChange[] {
  const out: MemoryChange[] = [];
  const tenth = Math.max(10_000, (to - from) / 10);
  for (const name of fleet.names()) {
    const readings = fleet.heapReadings(name).filter((r) => r.t >= from && r.t <= to);
    const last = readings.at(-1);
    if (!last) continue;
    const same = readings.filter((r) => r.pid === last.pid);
    const head = same.filter((r) => r.t <= (same[0]?.t ?? from) + tenth);
    const tail = same.filter((r) => r.t >= last.t - tenth);
    const mean = (rs: HeapReading[], f: (r: HeapReading) => number) => rs.reduce((n, r) => n + f(r), 0) / Math.max(1, rs.length) / 1048576;
    const change = (f: (r: HeapReading) => number) => {
      const start = mean(head, f);
      const end = mean(tail, f);
      return { start, end, growthPct: start > 0 ? (100 * (end - start)) / start : 0 };
    };
    out.push({ instance: name, rss: change((r) => r.rss), heapUsed: change((r) => r.heapUsed) });
  }
  return out;
}
