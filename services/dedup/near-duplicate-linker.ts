/**
 * Keeps the in-memory near-duplicate indexes in step with PostgreSQL and links each batch's
 * records to their near duplicates. The indexes are derived state: rebuilt from record_hashes
 * at start-up and caught up by hash_seq at the start of every batch (under the apply lock), so
 * several dedup instances always see the same hashes. One index per near algorithm of the hash
 * algorithm table, built by near-duplicates/index.ts; nothing here names an algorithm.
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
import { createNearDuplicateIndex, createNearDuplicateIndexes } from "./near-duplicates/index.ts";
import type { NearDuplicateIndex, NearDuplicateIndexOptions } from "./near-duplicates/index.ts";
import { loadRecords } from "./store.ts";

export interface NearDuplicateLinker {
  catchUp(client: PoolClient): Promise<void>;
  link(client: PoolClient, ws: WorkingSet): Promise<void>;
}

export class IndexedNearDuplicateLinker implements NearDuplicateLinker {
  private lastSeq = 0;
  private lastDegenerateSeq: number | null = null;
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
    const before = new Map([...this.indexes].map(([alg, index]) => [alg, index.size]));
    if (this.lastDegenerateSeq === null) {
      // First load: the hash query below leaves out every value degenerate by now.
      const { rows } = await client.query<{ seq: number }>("SELECT coalesce(max(degenerate_seq), 0)::bigint AS seq FROM degenerate_hashes");
      this.lastDegenerateSeq = Number(rows[0]?.seq ?? 0);
    }
    for (;;) {
      const { rows } = await client.query<{ hash_seq: number; alg: HashAlg; value: string; quality: number | null; record_no: number }>(
        `SELECT h.hash_seq, h.alg, h.value, h.quality, r.record_no FROM record_hashes h JOIN canonical_records r USING (record_id)
          WHERE h.alg = ANY($2::text[]) AND h.hash_seq > $1
            AND NOT EXISTS (SELECT 1 FROM degenerate_hashes d WHERE d.alg = h.alg AND d.value = h.value)
          ORDER BY h.hash_seq LIMIT 50000`,
        [this.lastSeq, NEAR_ALGORITHMS],
      );
      for (const r of rows) {
        if (intrinsicDegeneracy(r) === null) this.indexes.get(r.alg)?.add(r.record_no, r.value);
        this.lastSeq = r.hash_seq;
      }
      if (rows.length < 50000) break;
    }
    await this.dropNewlyDegenerate(client);
    // After a large load (start-up rebuild), build the static tables now rather than on the first query.
    for (const [alg, index] of this.indexes) if (index.size - (before.get(alg) ?? 0) > 10_000) index.compact();
  }

  /**
   * Re-indexes the records carrying values that became degenerate since the last catch-up, without
   * those values. Only SHARED ones can have been indexed: a low-quality or constant value never is.
   */
  private async dropNewlyDegenerate(client: PoolClient): Promise<void> {
    const { rows } = await client.query<{ seq: number; alg: HashAlg; value: string }>(
      "SELECT degenerate_seq AS seq, alg, value FROM degenerate_hashes WHERE degenerate_seq > $1 AND reason = 'SHARED' ORDER BY degenerate_seq",
      [this.lastDegenerateSeq],
    );
    if (rows.length === 0) return;
    this.lastDegenerateSeq = Number((rows[rows.length - 1] as { seq: number }).seq);
    const { rows: carried } = await client.query<{
      record_no: number;
      alg: HashAlg;
      value: string;
      quality: number | null;
      degenerate: boolean;
    }>(
      `SELECT r.record_no, h.alg, h.value, h.quality,
              EXISTS (SELECT 1 FROM degenerate_hashes d WHERE d.alg = h.alg AND d.value = h.value) AS degenerate
         FROM record_hashes h JOIN canonical_records r USING (record_id)
        WHERE NOT h.exact AND h.hash_seq <= $3 AND h.record_id IN (
          SELECT x.record_id FROM record_hashes x JOIN unnest($1::text[], $2::text[]) AS w(alg, value)
            ON x.alg = w.alg AND x.value = w.value WHERE NOT x.exact)`,
      [rows.map((r) => r.alg), rows.map((r) => r.value), this.lastSeq],
    );
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
    const nos = [...new Set(pairs.map((p) => p.otherNo).filter((n): n is number => n !== undefined))];
    const { rows } = await client.query<{ record_no: number; record_id: string }>(
      "SELECT record_no, record_id FROM canonical_records WHERE record_no = ANY($1::bigint[])",
      [nos],
    );
    const idByNo = new Map(rows.map((r) => [r.record_no, r.record_id]));
    await loadRecords(
      client,
      ws,
      rows.map((r) => r.record_id),
    );
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
