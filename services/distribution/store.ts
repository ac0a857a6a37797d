/**
 * PostgreSQL side of distribution: every SQL statement its apply step, policy reconciliation and
 * the claims backfill run, inside the caller's transaction. A round (the apply step's, or one slice
 * of a reconciliation) is two statements whatever its size: loadRound reads the planning state that
 * planner.ts works on (FeedLedger: record bodies, hash claims, merges, feed entries) and row-locks
 * every chain head; writeRound writes back what planning changed, the extended chain heads and the
 * signed feed records queued for Kafka (feed_outbox) and S3 deltas (feed_log), with the audit and
 * rejections. Both are named prepared statements of constant text, parsed and planned once per
 * connection. Why planning is per hash is explained once, in planner.ts.
 */
import type { AvroCodec } from "../shared/wire/codec.ts";
import { committedOutbox } from "../shared/outbox-relay.ts";
import type { CommittedOutbox } from "../shared/outbox-relay.ts";
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { CanonicalRecord } from "../shared/wire/records.ts";
import { hashKeyOf, splitHashKey } from "./planner.ts";
import type { FeedLedger, HashKey } from "./planner.ts";
import type { FeedEntry } from "./policy.ts";
import { bound } from "../shared/pg-arrays.ts";

interface EntryRow {
  partner_id: string;
  alg: FeedEntry["alg"];
  value: string;
  record_id: string;
  revision: number;
  category: string;
  content_type: string;
  extra: Record<string, string>;
}

function toEntry(r: EntryRow): FeedEntry {
  return {
    alg: r.alg,
    value: r.value,
    recordId: r.record_id,
    revision: r.revision,
    category: r.category,
    contentType: r.content_type,
    extra: r.extra,
  };
}

// A round: one statement loads, one writes.

/** A feed partition's chain head: the seq and digest of the last record issued on it. */
export interface ChainHead {
  readonly partnerId: string;
  readonly partition: number;
  readonly seq: number;
  readonly digest: Buffer;
}

/** A feed_outbox row; key and partition are null when the message has none (audit, rejections). */
export interface OutboxMessage {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly partition: number | null;
}

/** A recordRef issued to a partner, and the hub record behind it (disclosed_refs). */
export interface DisclosedRef {
  readonly partnerId: string;
  readonly recordRef: string;
  readonly recordId: string;
}

/** A signed feed record kept for the partner's next S3 delta (feed_log). */
export interface FeedLogRow {
  readonly partnerId: string;
  readonly partition: number;
  readonly seq: number;
  readonly body: Buffer;
}

interface ClaimRow {
  record_id: string;
  alg: string;
  value: string;
}

/** One row: each result set as a column (JSON or arrays), so that loading is one round trip. */
interface LoadRow {
  merges: { merged_id: string; survivor_id: string }[];
  claims: ClaimRow[];
  owned: EntryRow[];
  claimants: ClaimRow[];
  entries: EntryRow[];
  looked_up: string[];
  body_ids: string[];
  bodies: Buffer[];
  under_review: string[];
  heads: { partner_id: string; partition: number; last_seq: number; last_digest: string }[];
}

/**
 * $1 partners, $2 the records planned, $3/$4 the hashes their revisions list, $5 the records they are
 * merged into. What loadLedger read in dependent steps, as CTEs: the records merged into the planned
 * ones (ids: both), their claims and owned entries, every hash touched (listed, claimed or owned)
 * with its claimants and each partner's entry, and the bodies of all the records these name plus
 * the survivors of the records holding a touched hash. Last, every chain head, row-locked until
 * COMMIT before any is read, so that the chains this round extends stay contiguous. Each lookup is
 * a LATERAL subquery (OFFSET 0 keeps it from being flattened into a join): an index probe per key,
 * however large the planner guesses the CTEs before it to be, never a scan of the whole table.
 */
const LOAD_ROUND = {
  name: "distribution.load-round",
  text: `
WITH merges AS (
  SELECT merged_id, survivor_id FROM distributed_merges WHERE survivor_id = ANY($2::uuid[])
), ids AS (
  SELECT unnest($2::uuid[]) AS record_id UNION SELECT merged_id FROM merges
), claims AS (
  SELECT d.* FROM ids, LATERAL (
    SELECT record_id, alg, value FROM distributed_hashes WHERE record_id = ids.record_id OFFSET 0) d
), owned AS (
  SELECT f.* FROM ids, LATERAL (
    SELECT partner_id, alg, value, record_id, revision, category, content_type, extra FROM feed_entries
     WHERE partner_id = ANY($1::text[]) AND record_id = ids.record_id OFFSET 0) f
), touched AS (
  SELECT * FROM unnest($3::text[], $4::text[]) AS t(alg, value)
  UNION SELECT alg, value FROM claims
  UNION SELECT alg, value FROM owned
), claimants AS (
  SELECT d.* FROM touched t, LATERAL (
    SELECT record_id, alg, value FROM distributed_hashes WHERE alg = t.alg AND value = t.value OFFSET 0) d
), entries AS (
  SELECT f.* FROM touched t, LATERAL (
    SELECT partner_id, alg, value, record_id, revision, category, content_type, extra FROM feed_entries
     WHERE partner_id = ANY($1::text[]) AND alg = t.alg AND value = t.value OFFSET 0) f
), holders AS (
  SELECT DISTINCT record_id FROM entries
), looked_up AS (
  SELECT record_id FROM ids
  UNION SELECT record_id FROM claimants
  UNION SELECT record_id FROM holders
  UNION SELECT unnest($5::uuid[])
  UNION SELECT m.survivor_id FROM holders h, LATERAL (
    SELECT survivor_id FROM distributed_merges WHERE merged_id = h.record_id OFFSET 0) m
), found AS (
  SELECT r.* FROM looked_up l, LATERAL (
    SELECT record_id, body FROM distributed_records WHERE record_id = l.record_id OFFSET 0) r
), under_review AS (
  SELECT v.record_id FROM looked_up l, LATERAL (
    SELECT record_id FROM record_reviews WHERE record_id = l.record_id AND state = 'open' OFFSET 0) v
), heads AS (
  SELECT partner_id, partition, last_seq, last_digest FROM feed_partitions ORDER BY partner_id, partition FOR UPDATE
)
SELECT (SELECT coalesce(json_agg(m), '[]') FROM merges m) AS merges,
       (SELECT coalesce(json_agg(c), '[]') FROM claims c) AS claims,
       (SELECT coalesce(json_agg(o), '[]') FROM owned o) AS owned,
       (SELECT coalesce(json_agg(c), '[]') FROM claimants c) AS claimants,
       (SELECT coalesce(json_agg(e), '[]') FROM entries e) AS entries,
       ARRAY(SELECT record_id FROM looked_up) AS looked_up,
       ARRAY(SELECT record_id FROM found ORDER BY record_id) AS body_ids,
       ARRAY(SELECT body FROM found ORDER BY record_id) AS bodies,
       ARRAY(SELECT record_id FROM under_review) AS under_review,
       (SELECT coalesce(json_agg(json_build_object('partner_id', partner_id, 'partition', partition, 'last_seq', last_seq,
          'last_digest', encode(last_digest, 'hex')) ORDER BY partner_id, partition), '[]') FROM heads) AS heads`,
};

/**
 * Loads in one statement what planning these records' revisions needs for these partners (into
 * `ledger`, which holds nothing yet but record bodies) and returns every chain head, row-locked
 * until COMMIT. With no records there is nothing to plan: no statement, and no heads.
 */
export async function loadRound(
  tx: PoolClient,
  codec: AvroCodec,
  ledger: FeedLedger,
  partnerIds: readonly string[],
  records: readonly CanonicalRecord[],
): Promise<ChainHead[]> {
  if (!records.length) return [];
  const planned = [...new Set(records.map((r) => r.recordId))];
  const listed = [...new Set(records.flatMap((r) => r.hashes.map(hashKeyOf)))];
  const split = listed.map(splitHashKey);
  const mergedInto = [...new Set(records.map((r) => r.mergedInto).filter((id): id is string => Boolean(id)))];
  const { rows } = await tx.query<LoadRow>(
    bound(LOAD_ROUND, [partnerIds, planned, split.map((h) => h.alg), split.map((h) => h.value), mergedInto]),
  );
  const row = rows[0] as LoadRow;
  const holders = addLoaded(ledger, partnerIds, planned, listed, row);
  addBodies(codec, ledger, row);
  // The survivor a holder's body names is looked up through distributed_merges; a merge that table
  // does not know (a record merged before it existed) is read here.
  const survivors = holders.map((id) => ledger.knownRecord(id)?.mergedInto).filter((id): id is string => Boolean(id));
  await loadBodies(tx, codec, ledger, [...new Set(survivors)]);
  // Whether each record is under an open review (planner.withheldUnderReview): LOAD_ROUND says it
  // of the records it looked up, loadBodies of the survivors above; any other known record (none
  // that planning reads, so far) is asked for in one statement more.
  const underReview = new Set(row.under_review);
  for (const id of row.looked_up) if (!ledger.hasReview(id)) ledger.setReview(id, underReview.has(id));
  await loadReviews(tx, ledger, ledger.knownRecordIds());
  return row.heads.map((h) => ({
    partnerId: h.partner_id,
    partition: h.partition,
    seq: Number(h.last_seq),
    digest: Buffer.from(h.last_digest, "hex"),
  }));
}

/**
 * Fills the ledger from LOAD_ROUND's result the way its CTEs computed it (a hash touched is one
 * listed, claimed or owned); returns the records holding a touched hash in some partner's feed.
 */
function addLoaded(
  ledger: FeedLedger,
  partnerIds: readonly string[],
  planned: readonly string[],
  listed: readonly HashKey[],
  row: LoadRow,
): string[] {
  const merges = groupBy(
    planned,
    row.merges,
    (m) => m.survivor_id,
    (m) => m.merged_id,
  );
  for (const [id, merged] of merges) if (!ledger.hasMergesInto(id)) ledger.addMergesInto(id, merged);
  const ids = new Set([...planned, ...row.merges.map((m) => m.merged_id)]);
  const claims = groupBy([...ids], row.claims, (c) => c.record_id, hashKeyOf);
  for (const [id, hashes] of claims) if (!ledger.hasClaimsOf(id)) ledger.addClaimsOf(id, hashes);
  const owned = groupBy(
    partnerIds.flatMap((p) => [...ids].map((id) => `${p}|${id}`)),
    row.owned,
    (e) => `${e.partner_id}|${e.record_id}`,
    hashKeyOf,
  );
  for (const [k, hashes] of owned) {
    const [p, id] = [k.slice(0, k.indexOf("|")), k.slice(k.indexOf("|") + 1)];
    if (!ledger.hasOwned(p, id)) ledger.addOwned(p, id, hashes);
  }
  const touched = new Set([...listed, ...row.claims.map(hashKeyOf), ...row.owned.map(hashKeyOf)]);
  const claimants = groupBy([...touched], row.claimants, hashKeyOf, (c) => c.record_id);
  for (const [h, recordIds] of claimants) if (!ledger.hasClaimants(h)) ledger.addClaimants(h, recordIds);
  const entries = new Map(row.entries.map((e) => [`${e.partner_id}|${hashKeyOf(e)}`, e]));
  for (const p of partnerIds) {
    for (const h of touched) {
      const e = entries.get(`${p}|${h}`);
      if (!ledger.hasEntry(p, h)) ledger.addEntry(p, h, e ? toEntry(e) : null);
    }
  }
  return [...new Set(row.entries.map((e) => e.record_id))];
}

/** Groups rows under the given keys (each key present, possibly with nothing). */
function groupBy<R, V>(keys: readonly string[], rows: readonly R[], keyOf: (r: R) => string, itemOf: (r: R) => V): Map<string, V[]> {
  const out = new Map<string, V[]>(keys.map((k) => [k, []]));
  for (const r of rows) out.get(keyOf(r))?.push(itemOf(r));
  return out;
}

/** The bodies LOAD_ROUND found; the records it looked up and did not find are noted as absent. */
function addBodies(codec: AvroCodec, ledger: FeedLedger, row: LoadRow): void {
  const missing = row.looked_up.filter((id) => !ledger.hasRecord(id));
  const wanted = new Set(missing);
  row.body_ids.forEach((id, i) => {
    if (wanted.has(id)) ledger.addRecord(codec.decode("CanonicalRecord", row.bodies[i] as Buffer).value);
  });
  for (const id of missing) ledger.addAbsentRecord(id);
}

/**
 * Loads the latest applied body of each record not loaded yet, with whether it is under an open
 * review; those with none are noted as absent.
 */
async function loadBodies(tx: PoolClient, codec: AvroCodec, ledger: FeedLedger, recordIds: readonly string[]): Promise<void> {
  const missing = recordIds.filter((id) => !ledger.hasRecord(id));
  if (!missing.length) return;
  const { rows } = await tx.query<{ record_id: string; body: Buffer; under_review: boolean }>(
    bound(
      `SELECT record_id, body, EXISTS (SELECT 1 FROM record_reviews v WHERE v.record_id = d.record_id AND v.state = 'open') AS under_review
       FROM distributed_records d WHERE record_id = ANY($1::uuid[])`,
      [missing],
    ),
  );
  for (const r of rows) {
    ledger.addRecord(codec.decode("CanonicalRecord", r.body).value);
    if (!ledger.hasReview(r.record_id)) ledger.setReview(r.record_id, r.under_review);
  }
  for (const id of missing) {
    ledger.addAbsentRecord(id);
    if (!ledger.hasReview(id)) ledger.setReview(id, false);
  }
}

/** Which of these records, whose review state is not loaded yet, are under an open review. */
async function loadReviews(tx: PoolClient, ledger: FeedLedger, recordIds: readonly string[]): Promise<void> {
  const unknown = [...new Set(recordIds)].filter((id) => !ledger.hasReview(id));
  if (!unknown.length) return;
  const { rows } = await tx.query<{ record_id: string }>(
    bound("SELECT record_id FROM record_reviews WHERE state = 'open' AND record_id = ANY($1::uuid[])", [unknown]),
  );
  const open = new Set(rows.map((r) => r.record_id));
  for (const id of unknown) ledger.setReview(id, open.has(id));
}

/** What a round writes, besides the ledger's changes. */
export interface RoundWrites {
  /** The latest applied revision (and its bytes) of each record the round applied. */
  readonly records?: ReadonlyMap<string, { revision: number; bytes: Buffer }>;
  /** One entry per record entitled to a partner whose category has no mapping in its scheme. */
  readonly unmappable: readonly { partnerId: string; category: string }[];
  /** The chain heads the round extended. */
  readonly heads: readonly ChainHead[];
  /** In the order the relay must send them. */
  readonly outbox: readonly OutboxMessage[];
  readonly feedLog: readonly FeedLogRow[];
  /** The recordRefs the round issued (FeedWrites.refs). */
  readonly refs: readonly DisclosedRef[];
}

/**
 * Every write of a round as data-modifying CTEs of one statement. They share one snapshot and run
 * in no set order, so no row is written twice: claims are replaced as "insert the new set, delete
 * what is not in it" (disjoint rows, where delete-then-insert would touch the same keys), a
 * partner's entry is either set or removed, unmappable counts come summed per category, and the
 * outbox rows are one INSERT whose ids follow the messages' order. It answers with those ids and
 * the highest feed_outbox id committed before them (the snapshot does not see its own rows), so
 * that the relay need not read the rows back (OutboxRelay.handOff).
 */
const WRITE_ROUND = {
  name: "distribution.write-round",
  text: `
WITH applied AS (
  INSERT INTO distributed_records (record_id, revision, body) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[])
  ON CONFLICT (record_id) DO UPDATE SET revision = EXCLUDED.revision, body = EXCLUDED.body
), merged AS (
  INSERT INTO distributed_merges (merged_id, survivor_id) SELECT * FROM unnest($4::uuid[], $5::uuid[])
  ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id
), claimed AS (
  INSERT INTO distributed_hashes (alg, value, record_id) SELECT * FROM unnest($6::text[], $7::text[], $8::uuid[])
  ON CONFLICT DO NOTHING
), unclaimed AS (
  DELETE FROM distributed_hashes d WHERE d.record_id = ANY($9::uuid[])
     AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[], $8::uuid[]) AS n(a, v, r)
                      WHERE n.a = d.alg AND n.v = d.value AND n.r = d.record_id)
), held AS (
  INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
  SELECT p, a, v, r, rev, c, ct, x::jsonb
    FROM unnest($10::text[], $11::text[], $12::text[], $13::uuid[], $14::bigint[], $15::text[], $16::text[], $17::text[])
      AS t(p, a, v, r, rev, c, ct, x)
  ON CONFLICT (partner_id, alg, value) DO UPDATE SET record_id = EXCLUDED.record_id, revision = EXCLUDED.revision,
    category = EXCLUDED.category, content_type = EXCLUDED.content_type, extra = EXCLUDED.extra
), dropped AS (
  DELETE FROM feed_entries f USING unnest($18::text[], $19::text[], $20::text[]) AS t(p, a, v)
   WHERE f.partner_id = t.p AND f.alg = t.a AND f.value = t.v
), unmappable AS (
  INSERT INTO unmappable_counts (partner_id, category, count) SELECT * FROM unnest($21::text[], $22::text[], $23::bigint[])
  ON CONFLICT (partner_id, category) DO UPDATE SET count = unmappable_counts.count + EXCLUDED.count
), chained AS (
  INSERT INTO feed_partitions (partner_id, partition, last_seq, last_digest)
  SELECT * FROM unnest($24::text[], $25::int[], $26::bigint[], $27::bytea[])
  ON CONFLICT (partner_id, partition) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_digest = EXCLUDED.last_digest
), queued AS (
  INSERT INTO feed_outbox (topic, message_key, message_value, message_partition)
  SELECT * FROM unnest($28::text[], $29::text[], $30::bytea[], $31::int[])
  RETURNING id
), disclosed AS (
  INSERT INTO disclosed_refs (partner_id, record_ref, record_id) SELECT * FROM unnest($36::text[], $37::text[], $38::uuid[])
  ON CONFLICT DO NOTHING
), logged AS (
  INSERT INTO feed_log (partner_id, partition, seq, body) SELECT * FROM unnest($32::text[], $33::int[], $34::bigint[], $35::bytea[])
)
SELECT (SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM queued) AS outbox_ids,
       (SELECT coalesce(max(id), 0) FROM feed_outbox) AS outbox_before`,
};

/**
 * Writes a round: the records applied, the ledger's changes, unmappable counts, chain heads and
 * queues (no statement when empty). Returns the outbox rows queued, with their ids, for the relay.
 */
export async function writeRound(tx: PoolClient, ledger: FeedLedger, w: RoundWrites): Promise<CommittedOutbox> {
  const records = [...(w.records ?? [])];
  const merges = [...ledger.changedMerges];
  const reclaimed = [...ledger.changedClaims];
  const claims = reclaimed.flatMap(([id, hashes]) => [...hashes].map((h) => ({ recordId: id, ...splitHashKey(h) })));
  const { upserts, removes } = entryChanges(ledger);
  const unmappable = new Map<string, { partnerId: string; category: string; count: number }>();
  for (const u of w.unmappable) {
    const k = `${u.partnerId}\n${u.category}`;
    unmappable.set(k, { ...u, count: (unmappable.get(k)?.count ?? 0) + 1 });
  }
  const counts = [...unmappable.values()];
  const lists = [records, merges, reclaimed, upserts, removes, counts, w.heads, w.outbox, w.feedLog, w.refs];
  if (lists.every((l) => l.length === 0)) return { before: 0, rows: [] };
  const { rows } = await tx.query<{ outbox_ids: number[]; outbox_before: number }>(
    bound(WRITE_ROUND, [
      records.map(([id]) => id),
      records.map(([, r]) => r.revision),
      records.map(([, r]) => r.bytes),
      merges.map(([m]) => m),
      merges.map(([, sv]) => sv),
      claims.map((c) => c.alg),
      claims.map((c) => c.value),
      claims.map((c) => c.recordId),
      reclaimed.map(([id]) => id),
      upserts.map((u) => u.partnerId),
      upserts.map((u) => u.e.alg),
      upserts.map((u) => u.e.value),
      upserts.map((u) => u.e.recordId),
      upserts.map((u) => u.e.revision),
      upserts.map((u) => u.e.category),
      upserts.map((u) => u.e.contentType),
      upserts.map((u) => JSON.stringify(u.e.extra)),
      removes.map((r) => r.partnerId),
      removes.map((r) => r.alg),
      removes.map((r) => r.value),
      counts.map((c) => c.partnerId),
      counts.map((c) => c.category),
      counts.map((c) => c.count),
      w.heads.map((h) => h.partnerId),
      w.heads.map((h) => h.partition),
      w.heads.map((h) => h.seq),
      w.heads.map((h) => h.digest),
      w.outbox.map((m) => m.topic),
      w.outbox.map((m) => m.key),
      w.outbox.map((m) => m.value),
      w.outbox.map((m) => m.partition),
      w.feedLog.map((l) => l.partnerId),
      w.feedLog.map((l) => l.partition),
      w.feedLog.map((l) => l.seq),
      w.feedLog.map((l) => l.body),
      w.refs.map((r) => r.partnerId),
      w.refs.map((r) => r.recordRef),
      w.refs.map((r) => r.recordId),
    ]),
  );
  return committedOutbox("distribution round write", rows[0], w.outbox);
}

/** The ledger's changed feed entries: set (upserts) or removed. */
function entryChanges(ledger: FeedLedger): {
  upserts: { partnerId: string; e: FeedEntry }[];
  removes: { partnerId: string; alg: string; value: string }[];
} {
  const upserts: { partnerId: string; e: FeedEntry }[] = [];
  const removes: { partnerId: string; alg: string; value: string }[] = [];
  for (const [key, e] of ledger.changedEntries) {
    const bar = key.indexOf("|");
    const partnerId = key.slice(0, bar);
    if (e) upserts.push({ partnerId, e });
    else removes.push({ partnerId, ...splitHashKey(key.slice(bar + 1)) });
  }
  return { upserts, removes };
}

/** Records claiming hashes (distributed_hashes); a claim already there is kept. */
export async function insertHashClaims(tx: PoolClient, claims: readonly { recordId: string; alg: string; value: string }[]): Promise<void> {
  if (!claims.length) return;
  await tx.query(
    bound(
      `INSERT INTO distributed_hashes (alg, value, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
       ON CONFLICT DO NOTHING`,
      [claims.map((c) => c.alg), claims.map((c) => c.value), claims.map((c) => c.recordId)],
    ),
  );
}

// The apply step, reconciliation and backfill (processor.ts).

/** One page of distributed records in recordId order, after `after`. */
export async function distributedRecordsAfter(
  tx: PoolClient,
  after: string,
  limit: number,
): Promise<{ record_id: string; body: Buffer }[]> {
  const { rows } = await tx.query<{ record_id: string; body: Buffer }>(
    "SELECT record_id, body FROM distributed_records WHERE record_id > $1 ORDER BY record_id LIMIT $2",
    [after, limit],
  );
  return rows;
}

/** The policy version last reconciled into each partner's feed. */
export async function appliedPolicyVersions(db: Queryable): Promise<Map<string, number>> {
  const { rows } = await db.query<{ partner_id: string; version: number }>("SELECT partner_id, version FROM policy_applied");
  return new Map(rows.map((r) => [r.partner_id, r.version]));
}

/** Records that a partner's feed now follows this policy version; returns the version before, if any. */
export async function recordPolicyApplied(tx: PoolClient, partnerId: string, version: number): Promise<number | null> {
  // Both parts see the snapshot from before the upsert, so `prior` is the version it replaces.
  const { rows } = await tx.query<{ version: number }>(
    `WITH prior AS (SELECT version FROM policy_applied WHERE partner_id = $1),
          applied AS (INSERT INTO policy_applied (partner_id, version) VALUES ($1, $2)
                      ON CONFLICT (partner_id) DO UPDATE SET version = EXCLUDED.version)
     SELECT version FROM prior`,
    [partnerId, version],
  );
  return rows[0]?.version ?? null;
}

/** Forgets every applied policy version: the next refresh reconciles every partner's feed. */
export async function forgetAppliedPolicies(tx: PoolClient): Promise<void> {
  await tx.query("DELETE FROM policy_applied");
}

/** Takes a pending one-off backfill by name: true once, when it was pending. */
export async function takePendingBackfill(tx: PoolClient, name: string): Promise<boolean> {
  const { rows } = await tx.query("DELETE FROM distribution_backfills WHERE name = $1 RETURNING name", [name]);
  return rows.length > 0;
}

/** Records recordRefs issued to partners (the start-up backfill of disclosed_refs); known ones are kept. */
export async function recordDisclosedRefs(tx: PoolClient, refs: readonly DisclosedRef[]): Promise<void> {
  if (!refs.length) return;
  await tx.query(
    bound(
      `INSERT INTO disclosed_refs (partner_id, record_ref, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
       ON CONFLICT DO NOTHING`,
      [refs.map((r) => r.partnerId), refs.map((r) => r.recordRef), refs.map((r) => r.recordId)],
    ),
  );
}
