/**
 * Gives the pages of a freed V8 heap back to the system after a burst of allocation. A collection
 * frees the heap's pages into a pool, for reuse, and V8 returns the pool to the system only in a
 * memory-reducing collection, which it rarely starts by itself in a busy process; so without this a
 * process stays resident at the largest heap it ever had, not the heap it has. A "last-resort"
 * collection is a full, memory-reducing one: tens of milliseconds on a service's heap, so it is for
 * rare bursts (a policy reconciliation), never for every round. It needs --expose-gc
 * (runtime-settings.ts); without it this does nothing.
 */

type ExposedGc = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

/** Runs a memory-reducing full collection now; false when the process was started without --expose-gc. */
export function releaseFreedMemory(): boolean {
  const gc = (globalThis as { gc?: ExposedGc }).gc;
  if (typeof gc !== "function") return false;
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return true;
}

/**
 * Calls `release` once, `quietMs` after the last of a run of `soon()` calls: after a burst and the
 * work it sets off (the relay sending what a reconciliation queued), not in the middle of it.
 */
export function releaseAfterBursts(quietMs: number, release: () => unknown = releaseFreedMemory): { soon(): void; stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  return {
    soon() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        release();
      }, quietMs);
      timer.unref();
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

/**
 * Calls `release` on every `n`th call: a long run of slices (a reconciliation over every record)
 * promotes each slice's short-lived objects and grows the heap with the data unless its pages are
 * given back along the way.
 */
export function releaseEvery(n: number, release: () => unknown = releaseFreedMemory): () => void {
  let calls = 0;
  return () => {
    calls++;
    if (calls % n === 0) release();
  };
}
