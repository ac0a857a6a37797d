/**
 * Keeps the in-memory near-duplicate indexes in step with PostgreSQL and links each batch's
 * records to their near duplicates. The indexes are derived state: rebuilt from record_hashes
 * at start-up and caught up by hash_seq at the start of every round (under the apply lock), so
 * several dedup instances always see the same hashes. One index per near algorithm of the hash
 * algorithm table, built by near-duplicates/index.ts; nothing here names an algorithm.
 *
 * A round's catch-up is read by the round's load statement (store.ts) from catchUpFrom() and
 * handed to caughtUp(). The rows this instance inserted itself (wrote(), hash_seq from RETURNING)
 * are not read again: their values are kept in memory until the next catch-up, which reads only
 * whether they were committed (a round rolled back leaves no row, and its hash_seq values are
 * never used again) and are still indexable. Rows of other instances are read as ever, so every
 * instance's indexes end up holding the same rows.
 *
 * Degenerate values (degenerate.ts) never enter an index and never query one. A value that becomes
 * degenerate after it was indexed is dropped by catch-up (degenerate_seq): the records carrying it
 * are removed from the index and their other values added again.
 */
import type { PoolClient } from "../shared/postgres.ts";
import type { HashAlg } from "../shared/wire/records.ts";
import { NEAR_ALGORITHMS } from "../shared/wire/hash-algorithms.ts";
import { intrinsicDegeneracy } from "./degenerate.ts";
import { isMatchable, linkNearDuplicates } from "./engine.ts";
import type { RecordState, WorkingSet } from "./engine.ts";
import { carriedRows, latestDegenerateSeq, readCatchUp } from "./near-duplicate-store.ts";
import type { CatchUpFrom, CatchUpRows, DegenerateSeqRow, NearHashRow } from "./near-duplicate-store.ts";
import { createNearDuplicateIndex, createNearDuplicateIndexes } from "./near-duplicates/index.ts";
import type { NearDuplicateIndex, NearDuplicateIndexOptions } from "./near-duplicates/index.ts";
import { loadRecords } from "./store.ts";

export type { CatchUpFrom, CatchUpRows, NearHashRow };

export interface NearDuplicateLinker {
  /** Reads and applies everything new on its own (start-up). */
  catchUp(client: PoolClient): Promise<void>;
  /** Where the round's catch-up reads from (the first one also reads where degenerate_seq stands). */
  catchUpFrom(client: PoolClient): Promise<CatchUpFrom>;
  /** Applies what was read from catchUpFrom(), reading further pages itself after a full one. */
  caughtUp(client: PoolClient, from: CatchUpFrom, rows: CatchUpRows): Promise<void>;
  link(client: PoolClient, ws: WorkingSet): Promise<void>;
  /** The perceptual rows the round inserted (hash_seq from RETURNING), before its COMMIT. */
  wrote(rows: readonly NearHashRow[]): void;
}

const NEAR = new Set<HashAlg>(NEAR_ALGORITHMS);

export class IndexedNearDuplicateLinker implements NearDuplicateLinker {
  private lastSeq = 0;
  private lastDegenerateSeq: number | null = null;
  /** Rows this instance inserted since its last catch-up, by hash_seq; committed or not. */
  private own = new Map<number, NearHashRow>();
  /** One index per near algorithm. */
  readonly indexes: ReadonlyMap<HashAlg, NearDuplicateIndex>;

  private readonly options: NearDuplicateIndexOptions;

  constructor(options: NearDuplicateIndexOptions) {
    this.options = options;
    this.indexes = createNearDuplicateIndexes(options);
  }

  /** Hashes held by all the near-duplicate indexes. */
  get indexedHashes(): number {
    let n = 0;
    for (const index of this.indexes.values()) n += index.size;
    return n;
  }

  async catchUp(client: PoolClient): Promise<void> {
    const from = await this.catchUpFrom(client);
    await this.caughtUp(client, from, await readCatchUp(client, from));
  }

  async catchUpFrom(client: PoolClient): Promise<CatchUpFrom> {
    // First catch-up: the hash rows read leave out every value degenerate by now.
    this.lastDegenerateSeq ??= await latestDegenerateSeq(client);
    return { hashSeq: this.lastSeq, degenerateSeq: this.lastDegenerateSeq, own: [...this.own.keys()] };
  }

  async caughtUp(client: PoolClient, from: CatchUpFrom, rows: CatchUpRows): Promise<void> {
    const before = new Map([...this.indexes].map(([alg, index]) => [alg, index.size]));
    let page: Pick<CatchUpRows, "hashes" | "more"> = rows;
    for (;;) {
      for (const r of page.hashes) this.index(r);
      if (!page.more) break;
      page = await readCatchUp(client, { ...from, hashSeq: this.lastSeq });
    }
    // Every other row past from.hashSeq is read by now, so the own rows go in after them.
    for (const seq of rows.ownIndexable) {
      const r = this.own.get(seq);
      if (r) this.index(r);
    }
    for (const seq of from.own) this.own.delete(seq);
    await this.dropNewlyDegenerate(client, rows.degenerate);
    // After a large load (start-up rebuild), build the static tables now rather than on the first query.
    for (const [alg, index] of this.indexes) if (index.size - (before.get(alg) ?? 0) > 10_000) index.compact();
  }

  wrote(rows: readonly NearHashRow[]): void {
    for (const r of rows) if (NEAR.has(r.alg)) this.own.set(r.hash_seq, r);
  }

  private index(r: NearHashRow): void {
    if (intrinsicDegeneracy(r) === null) this.indexes.get(r.alg)?.add(r.record_no, r.value);
    this.lastSeq = Math.max(this.lastSeq, r.hash_seq);
  }

  /**
   * Re-indexes the records carrying values that became degenerate since the last catch-up, without
   * those values. Only SHARED ones can have been indexed: a low-quality or constant value never is.
   */
  private async dropNewlyDegenerate(client: PoolClient, rows: readonly DegenerateSeqRow[]): Promise<void> {
    const last = rows.at(-1);
    if (!last) return;
    this.lastDegenerateSeq = last.seq;
    const carried = await carriedRows(client, rows, this.lastSeq);
    for (const no of new Set(carried.map((c) => c.record_no))) for (const index of this.indexes.values()) index.remove(no);
    for (const c of carried) if (!c.degenerate && intrinsicDegeneracy(c) === null) this.indexes.get(c.alg)?.add(c.record_no, c.value);
  }

  async link(client: PoolClient, ws: WorkingSet): Promise<void> {
    const changed = [...ws.records.values()].filter((r) => r.changed && !r.deleted && !r.mergedInto);
    const pairs: { rec: RecordState; otherNo?: number; otherId?: string }[] = [];
    for (const rec of changed) {
      for (const h of rec.hashes.values()) {
        const index = isMatchable(ws, h) ? this.indexes.get(h.alg) : undefined;
        if (index) for (const hit of index.query(h.value)) if (hit.id !== rec.recordNo) pairs.push({ rec, otherNo: hit.id });
      }
    }
    // Hashes that arrived in this batch are not in the main indexes yet (they are caught up from
    // PostgreSQL at the next batch): index this batch's records on their own and query that too.
    // Each algorithm's batch index is made when the batch first has a hash of it.
    const batch = new Map<HashAlg, NearDuplicateIndex>();
    const batchOptions: NearDuplicateIndexOptions = { ...this.options, expectedSize: changed.length };
    changed.forEach((rec, i) => {
      for (const h of rec.hashes.values()) {
        if (!isMatchable(ws, h)) continue;
        let index = batch.get(h.alg);
        if (!index) {
          index = createNearDuplicateIndex(h.alg, batchOptions);
          batch.set(h.alg, index);
        }
        index.add(i, h.value);
      }
    });
    changed.forEach((rec, i) => {
      for (const h of rec.hashes.values()) {
        const hits = isMatchable(ws, h) ? (batch.get(h.alg)?.query(h.value) ?? []) : [];
        for (const hit of hits) if (hit.id > i) pairs.push({ rec, otherId: (changed[hit.id] as RecordState).recordId });
      }
    });
    if (pairs.length === 0) return;
    const nos = new Set(pairs.map((p) => p.otherNo).filter((n): n is number => n !== undefined));
    const byNo = () =>
      new Map([...ws.records.values()].filter((r) => r.recordNo !== null && nos.has(r.recordNo)).map((r) => [r.recordNo, r.recordId]));
    const loaded = byNo();
    await loadRecords(client, ws, { recordNos: [...nos].filter((n) => !loaded.has(n)) });
    const idByNo = byNo();
    for (const p of pairs) {
      const other = p.otherId ?? (p.otherNo !== undefined ? idByNo.get(p.otherNo) : undefined);
      if (other && !ws.records.get(other)?.deleted) linkNearDuplicates(ws, p.rec.recordId, other);
      else if (other) {
        // The hit was merged away: link to whatever it was merged into.
        const merged = ws.records.get(other)?.mergedInto;
        if (merged) linkNearDuplicates(ws, p.rec.recordId, merged);
      }
    }
  }
}
