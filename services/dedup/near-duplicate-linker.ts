/**
 * Keeps the in-memory near-duplicate indexes in step with PostgreSQL and links each batch's
 * records to their near duplicates. The indexes are derived state: rebuilt from record_hashes
 * at start-up and caught up by hash_seq at the start of every batch (under the apply lock), so
 * several dedup instances always see the same hashes.
 */
import type { PoolClient } from "../shared/postgres.ts";
import type { Hash } from "../shared/wire/records.ts";
import { linkNearDuplicates } from "./engine.ts";
import type { RecordState, WorkingSet } from "./engine.ts";
import { PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY, PdqIndex } from "./near-duplicates/pdq-index.ts";
import { PhotoDnaIndex } from "./near-duplicates/photodna-index.ts";
import { loadRecords } from "./store.ts";

export interface NearDuplicateLinker {
  catchUp(client: PoolClient): Promise<void>;
  link(client: PoolClient, ws: WorkingSet): Promise<void>;
}

const usablePdq = (h: Hash) => h.alg === "pdq" && (h.quality === null || h.quality >= PDQ_MIN_QUALITY);

export class IndexedNearDuplicateLinker implements NearDuplicateLinker {
  private lastSeq = 0;
  readonly pdq: PdqIndex;
  readonly photodna = new PhotoDnaIndex();

  private readonly options: { photodnaThreshold: number; expectedSize?: number };

  constructor(options: { photodnaThreshold: number; expectedSize?: number }) {
    this.options = options;
    this.pdq = new PdqIndex({ maxDistance: PDQ_MAX_DISTANCE, ...(options.expectedSize ? { expectedSize: options.expectedSize } : {}) });
  }

  get indexedHashes(): number {
    return this.pdq.size;
  }

  async catchUp(client: PoolClient): Promise<void> {
    const before = this.pdq.size;
    for (;;) {
      const { rows } = await client.query<{ hash_seq: number; alg: string; value: string; quality: number | null; record_no: number }>(
        `SELECT h.hash_seq, h.alg, h.value, h.quality, r.record_no FROM record_hashes h JOIN canonical_records r USING (record_id)
          WHERE h.alg IN ('pdq', 'photodna') AND h.hash_seq > $1 ORDER BY h.hash_seq LIMIT 50000`,
        [this.lastSeq],
      );
      for (const r of rows) {
        if (r.alg === "pdq" && (r.quality === null || r.quality >= PDQ_MIN_QUALITY)) this.pdq.add(r.record_no, r.value);
        if (r.alg === "photodna") this.photodna.add(r.record_no, r.value);
        this.lastSeq = r.hash_seq;
      }
      if (rows.length < 50000) break;
    }
    // After a large load (start-up rebuild), build the static tables now rather than on the first query.
    if (this.pdq.size - before > 10_000) this.pdq.compact();
  }

  async link(client: PoolClient, ws: WorkingSet): Promise<void> {
    const changed = [...ws.records.values()].filter((r) => r.changed && !r.deleted && !r.mergedInto);
    const pairs: { rec: RecordState; otherNo?: number; otherId?: string }[] = [];
    for (const rec of changed) {
      for (const h of rec.hashes.values()) {
        if (usablePdq(h)) for (const hit of this.pdq.query(h.value)) if (hit.id !== rec.recordNo) pairs.push({ rec, otherNo: hit.id });
        if (h.alg === "photodna") {
          for (const hit of this.photodna.query(h.value, this.options.photodnaThreshold)) {
            if (hit.id !== rec.recordNo) pairs.push({ rec, otherNo: hit.id });
          }
        }
      }
    }
    // Hashes that arrived in this batch are not in the main indexes yet (they are caught up from
    // PostgreSQL at the next batch): index this batch's records on their own and query that too.
    const batchPdq = new PdqIndex({ maxDistance: PDQ_MAX_DISTANCE, expectedSize: changed.length });
    const batchPhotoDna = new PhotoDnaIndex();
    changed.forEach((rec, i) => {
      for (const h of rec.hashes.values()) {
        if (usablePdq(h)) batchPdq.add(i, h.value);
        if (h.alg === "photodna") batchPhotoDna.add(i, h.value);
      }
    });
    changed.forEach((rec, i) => {
      for (const h of rec.hashes.values()) {
        const hits = usablePdq(h) ? batchPdq.query(h.value) : h.alg === "photodna" ? batchPhotoDna.query(h.value, this.options.photodnaThreshold) : [];
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
    await loadRecords(client, ws, rows.map((r) => r.record_id));
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
