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
  /**
   * The lowest resident set in the first and the last tenth: what the process holds between bursts.
   * A mean rises with the bursts in hand at the end (a reconciliation walks every record, so its
   * peak grows with the data); memory kept for good raises this as well.
   */
  readonly rssFloor: { start: number; end: number; growthPct: number };
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
    const least = (rs: HeapReading[], f: (r: HeapReading) => number) => (rs.length ? Math.min(...rs.map(f)) / 1048576 : 0);
    const change = (f: (r: HeapReading) => number, of = mean) => {
      const start = of(head, f);
      const end = of(tail, f);
      return { start, end, growthPct: start > 0 ? (100 * (end - start)) / start : 0 };
    };
    out.push({ instance: name, rss: change((r) => r.rss), heapUsed: change((r) => r.heapUsed), rssFloor: change((r) => r.rss, least) });
  }
  return out;
}

/** What one policy change did to a stage's lag: its peak, and how long until it was back down. */
export interface LagBurst {
  /** Seconds since the start of the run that the policy was changed. */
  readonly at: number;
  readonly peak: number;
  /** Seconds from the change to the first reading back at the level before it; null if never. */
  readonly drainS: number | null;
}

export interface LagOverRun {
  readonly stage: string;
  /** Mean of every reading in the first and the last third of the window, and the largest. */
  readonly all: { readonly first: number; readonly last: number; readonly max: number };
  /** The same over the readings outside the bursts: whether the stage keeps up with the stream. */
  readonly steady: { readonly first: number; readonly last: number; readonly readings: number };
  readonly bursts: LagBurst[];
}

/** How long a change may take to show in a stage's lag before it counts as no burst there. */
const BURST_ONSET_S = 30;

/**
 * A stage's lag over the window from `fromS`, with the bursts that policy changes cause told
 * apart: a change reissues part of a partner's feed at once, a burst that grows with the data
 * held, so a mean over every reading rises over a long run even while the stage keeps up.
 * A burst runs from the change until the lag is back at most at the highest of the three readings
 * before it (the stream's own level), once it has risen above that.
 */
export function lagOverRun(samples: readonly Sample[], stage: string, changesS: readonly number[], fromS: number): LagOverRun {
  const readings = samples.flatMap((s) => {
    const lag = s.lag[stage];
    return typeof lag === "number" ? [{ t: s.t, lag }] : [];
  });
  const inBurst = new Set<number>();
  const bursts: LagBurst[] = [];
  for (const at of changesS) {
    const before = readings.filter((r) => r.t < at).slice(-3);
    const level = Math.max(0, ...before.map((r) => r.lag));
    let peak = 0;
    let drainS: number | null = null;
    const members: number[] = [];
    for (let i = readings.findIndex((r) => r.t >= at); i >= 0 && i < readings.length; i++) {
      const r = readings[i] as { t: number; lag: number };
      if (r.lag > level) {
        peak = Math.max(peak, r.lag);
        members.push(i);
      } else if (peak > 0) {
        drainS = r.t - at;
        break;
      } else if (r.t - at >= BURST_ONSET_S) break;
    }
    if (peak === 0) continue;
    for (const i of members) inBurst.add(i);
    bursts.push({ at, peak, drainS });
  }
  const window = readings.map((r, i) => ({ ...r, i })).filter((r) => r.t >= fromS);
  const steady = window.filter((r) => !inBurst.has(r.i));
  return {
    stage,
    all: { ...thirds(window.map((r) => r.lag)), max: Math.max(0, ...window.map((r) => r.lag)) },
    steady: { ...thirds(steady.map((r) => r.lag)), readings: steady.length },
    bursts: bursts.filter((b) => b.at >= fromS),
  };
}

/** The mean of the first and of the last third of a series. */
function thirds(xs: readonly number[]): { first: number; last: number } {
  const third = Math.max(1, Math.floor(xs.length / 3));
  const mean = (v: readonly number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);
  return { first: mean(xs.slice(0, third)), last: mean(xs.slice(-third)) };
}
