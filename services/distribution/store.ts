/**
 * PostgreSQL side of distribution: every SQL statement its apply step, policy reconciliation and
 * the claims backfill run, inside the caller's transaction. It loads the planning state that
 * planner.ts works on (FeedLedger: record bodies, hash claims, merges, feed entries) and writes back
 * what planning changed; it stores chain heads and queues signed feed records for Kafka
 * (feed_outbox) and S3 deltas (feed_log). Why planning is per hash is explained once, in planner.ts.
 */
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { PoolClient, Queryable } from "../shared/postgres.ts";
import type { CanonicalRecord } from "../shared/wire/records.ts";
import { hashKeyOf, splitHashKey } from "./planner.ts";
import type { FeedLedger, HashKey } from "./planner.ts";
import type { FeedEntry } from "./policy.ts";

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

// Loading the ledger.

/**
 * Loads what planning these records' revisions needs for these partners, in a few queries: the
 * stored bodies and claims of the records, the entries they own, then every hash they touch
 * (listed, claimed or owned), with its claimants, their bodies and each partner's entry.
 * Anything already loaded is not read again.
 */
export async function loadLedger(
  tx: PoolClient,
  codec: AvroCodec,
  ledger: FeedLedger,
  partnerIds: readonly string[],
  records: readonly CanonicalRecord[],
): Promise<void> {
  const planned = [...new Set(records.map((r) => r.recordId))];
  // Records merged into the planned ones: planning a survivor re-plans what they still hold.
  await loadMergesInto(tx, ledger, planned);
  const ids = [...new Set([...planned, ...planned.flatMap((id) => ledger.mergedInto(id))])];
  await loadBodies(tx, codec, ledger, ids);
  await loadClaimsOf(tx, ledger, ids);
  await loadOwnedEntries(tx, ledger, partnerIds, ids);
  const touched = new Set<HashKey>();
  for (const r of records) for (const h of r.hashes) touched.add(hashKeyOf(h));
  for (const id of ids) {
    for (const h of ledger.claimsOf(id)) touched.add(h);
    for (const p of partnerIds) for (const h of ledger.ownedBy(p, id)) touched.add(h);
  }
  await loadClaimants(tx, ledger, [...touched]);
  await loadEntries(tx, ledger, partnerIds, [...touched]);
  // Claimants govern; the records holding these hashes in a feed, and the survivors of those merged
  // away, decide whether a hash nobody claims waits for its survivor (planner.awaitingSurvivor).
  const holders = partnerIds.flatMap((p) =>
    [...touched].map((h) => ledger.entry(p, h)?.recordId).filter((id): id is string => Boolean(id)),
  );
  await loadBodies(tx, codec, ledger, [...new Set([...[...touched].flatMap((h) => ledger.claimants(h)), ...holders])]);
  const mergedInto = [...records.map((r) => r.mergedInto), ...holders.map((id) => ledger.knownRecord(id)?.mergedInto)];
  await loadBodies(tx, codec, ledger, [...new Set(mergedInto.filter((id): id is string => Boolean(id)))]);
  await loadReviews(tx, ledger, [...planned, ...ledger.knownRecordIds()]);
}

/** Which of these records are under an open review (planner.withheldUnderReview). */
async function loadReviews(tx: PoolClient, ledger: FeedLedger, recordIds: readonly string[]): Promise<void> {
  const unknown = [...new Set(recordIds)].filter((id) => !ledger.hasReview(id));
  if (!unknown.length) return;
  const { rows } = await tx.query<{ record_id: string }>(
    "SELECT record_id FROM record_reviews WHERE state = 'open' AND record_id = ANY($1::uuid[])",
    [unknown],
  );
  const open = new Set(rows.map((r) => r.record_id));
  for (const id of unknown) ledger.setReview(id, open.has(id));
}

/** The records merged into each of these survivors. */
async function loadMergesInto(tx: PoolClient, ledger: FeedLedger, survivorIds: readonly string[]): Promise<void> {
  const survivorsToLoad = survivorIds.filter((id) => !ledger.hasMergesInto(id));
  if (!survivorsToLoad.length) return;
  const { rows } = await tx.query<{ merged_id: string; survivor_id: string }>(
    "SELECT merged_id, survivor_id FROM distributed_merges WHERE survivor_id = ANY($1::uuid[])",
    [survivorsToLoad],
  );
  for (const id of survivorsToLoad) {
    ledger.addMergesInto(
      id,
      rows.filter((r) => r.survivor_id === id).map((r) => r.merged_id),
    );
  }
}

/** Loads the latest applied body of each record; those with none are noted as absent. */
async function loadBodies(tx: PoolClient, codec: AvroCodec, ledger: FeedLedger, recordIds: readonly string[]): Promise<void> {
  const missing = recordIds.filter((id) => !ledger.hasRecord(id));
  if (!missing.length) return;
  const { rows } = await tx.query<{ body: Buffer }>("SELECT body FROM distributed_records WHERE record_id = ANY($1::uuid[])", [missing]);
  for (const r of rows) ledger.addRecord(codec.decode("CanonicalRecord", r.body).value);
  for (const id of missing) ledger.addAbsentRecord(id);
}

/** The hashes each of these records claims. */
async function loadClaimsOf(tx: PoolClient, ledger: FeedLedger, recordIds: readonly string[]): Promise<void> {
  const claimless = recordIds.filter((id) => !ledger.hasClaimsOf(id));
  if (!claimless.length) return;
  const { rows } = await tx.query<{ record_id: string; alg: string; value: string }>(
    "SELECT record_id, alg, value FROM distributed_hashes WHERE record_id = ANY($1::uuid[])",
    [claimless],
  );
  const claims = new Map<string, HashKey[]>(claimless.map((id) => [id, []]));
  for (const r of rows) claims.get(r.record_id)?.push(hashKeyOf(r));
  for (const [id, hashes] of claims) ledger.addClaimsOf(id, hashes);
}

/** The feed entries each of these records owns in each partner's feed. */
async function loadOwnedEntries(
  tx: PoolClient,
  ledger: FeedLedger,
  partnerIds: readonly string[],
  recordIds: readonly string[],
): Promise<void> {
  const ownerless = partnerIds.flatMap((p) => recordIds.filter((id) => !ledger.hasOwned(p, id)).map((id) => [p, id] as const));
  if (!ownerless.length) return;
  const { rows } = await tx.query<EntryRow>(
    `SELECT f.partner_id, f.alg, f.value, f.record_id, f.revision, f.category, f.content_type, f.extra
       FROM feed_entries f JOIN unnest($1::text[], $2::uuid[]) AS t(p, r) ON f.partner_id = t.p AND f.record_id = t.r`,
    [ownerless.map(([p]) => p), ownerless.map(([, id]) => id)],
  );
  const owned = new Map<string, HashKey[]>(ownerless.map(([p, id]) => [`${p}|${id}`, []]));
  for (const row of rows) {
    ledger.addEntry(row.partner_id, hashKeyOf(row), toEntry(row));
    owned.get(`${row.partner_id}|${row.record_id}`)?.push(hashKeyOf(row));
  }
  for (const [k, hashes] of owned) {
    const bar = k.indexOf("|");
    ledger.addOwned(k.slice(0, bar), k.slice(bar + 1), hashes);
  }
}

/** The records claiming each of these hashes. */
async function loadClaimants(tx: PoolClient, ledger: FeedLedger, hashes: readonly HashKey[]): Promise<void> {
  const unclaimed = hashes.filter((h) => !ledger.hasClaimants(h));
  if (!unclaimed.length) return;
  const split = unclaimed.map(splitHashKey);
  const { rows } = await tx.query<{ record_id: string; alg: string; value: string }>(
    `SELECT d.record_id, d.alg, d.value FROM distributed_hashes d
       JOIN unnest($1::text[], $2::text[]) AS t(a, v) ON d.alg = t.a AND d.value = t.v`,
    [split.map((h) => h.alg), split.map((h) => h.value)],
  );
  const claimants = new Map<HashKey, string[]>(unclaimed.map((h) => [h, []]));
  for (const r of rows) claimants.get(hashKeyOf(r))?.push(r.record_id);
  for (const [h, recordIds] of claimants) ledger.addClaimants(h, recordIds);
}

/** Each partner's entry for each of these hashes (none is noted as none). */
async function loadEntries(tx: PoolClient, ledger: FeedLedger, partnerIds: readonly string[], hashes: readonly HashKey[]): Promise<void> {
  const unheld = partnerIds.flatMap((p) => hashes.filter((h) => !ledger.hasEntry(p, h)).map((h) => [p, h] as const));
  if (!unheld.length) return;
  const split = unheld.map(([, h]) => splitHashKey(h));
  const { rows } = await tx.query<EntryRow>(
    `SELECT f.partner_id, f.alg, f.value, f.record_id, f.revision, f.category, f.content_type, f.extra
       FROM feed_entries f JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(p, a, v)
         ON f.partner_id = t.p AND f.alg = t.a AND f.value = t.v`,
    [unheld.map(([p]) => p), split.map((h) => h.alg), split.map((h) => h.value)],
  );
  const found = new Set<string>();
  for (const row of rows) {
    ledger.addEntry(row.partner_id, hashKeyOf(row), toEntry(row));
    found.add(`${row.partner_id}|${hashKeyOf(row)}`);
  }
  for (const [p, h] of unheld) if (!found.has(`${p}|${h}`)) ledger.addEntry(p, h, null);
}

// Writing back what planning changed.

/** Writes the ledger's changes: merges, replaced claims, then feed entries set and removed. */
export async function writeLedgerChanges(tx: PoolClient, ledger: FeedLedger): Promise<void> {
  const upserts: { partnerId: string; e: FeedEntry }[] = [];
  const removes: { partnerId: string; alg: string; value: string }[] = [];
  for (const [key, e] of ledger.changedEntries) {
    const bar = key.indexOf("|");
    const partnerId = key.slice(0, bar);
    if (e) upserts.push({ partnerId, e });
    else removes.push({ partnerId, ...splitHashKey(key.slice(bar + 1)) });
  }
  const merges = [...ledger.changedMerges];
  if (merges.length) {
    await tx.query(
      `INSERT INTO distributed_merges (merged_id, survivor_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])
       ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id`,
      [merges.map(([m]) => m), merges.map(([, sv]) => sv)],
    );
  }
  const reclaimed = [...ledger.changedClaims];
  if (reclaimed.length) {
    await tx.query("DELETE FROM distributed_hashes WHERE record_id = ANY($1::uuid[])", [reclaimed.map(([id]) => id)]);
    await insertHashClaims(
      tx,
      reclaimed.flatMap(([id, hashes]) => [...hashes].map((h) => ({ recordId: id, ...splitHashKey(h) }))),
    );
  }
  await upsertFeedEntries(tx, upserts);
  if (removes.length) {
    await tx.query(
      `DELETE FROM feed_entries f USING unnest($1::text[], $2::text[], $3::text[]) AS t(p, a, v)
        WHERE f.partner_id = t.p AND f.alg = t.a AND f.value = t.v`,
      [removes.map((r) => r.partnerId), removes.map((r) => r.alg), removes.map((r) => r.value)],
    );
  }
}

/** Records claiming hashes (distributed_hashes); a claim already there is kept. */
export async function insertHashClaims(tx: PoolClient, claims: readonly { recordId: string; alg: string; value: string }[]): Promise<void> {
  if (!claims.length) return;
  await tx.query(
    `INSERT INTO distributed_hashes (alg, value, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
     ON CONFLICT DO NOTHING`,
    [claims.map((c) => c.alg), claims.map((c) => c.value), claims.map((c) => c.recordId)],
  );
}

async function upsertFeedEntries(tx: PoolClient, upserts: readonly { partnerId: string; e: FeedEntry }[]): Promise<void> {
  if (!upserts.length) return;
  await tx.query(
    `INSERT INTO feed_entries (partner_id, alg, value, record_id, revision, category, content_type, extra)
     SELECT p, a, v, r, rev, c, ct, x::jsonb
       FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::text[])
         AS t(p, a, v, r, rev, c, ct, x)
     ON CONFLICT (partner_id, alg, value) DO UPDATE SET record_id = EXCLUDED.record_id, revision = EXCLUDED.revision,
       category = EXCLUDED.category, content_type = EXCLUDED.content_type, extra = EXCLUDED.extra`,
    [
      upserts.map((u) => u.partnerId),
      upserts.map((u) => u.e.alg),
      upserts.map((u) => u.e.value),
      upserts.map((u) => u.e.recordId),
      upserts.map((u) => u.e.revision),
      upserts.map((u) => u.e.category),
      upserts.map((u) => u.e.contentType),
      upserts.map((u) => JSON.stringify(u.e.extra)),
    ],
  );
}

// Feed chains and queues (feed-writer.ts).

/**
 * Every feed partition's chain head, row-locked until COMMIT (a partition without a row has
 * issued nothing yet). One statement for all: a transaction holding the apply lock is the only
 * writer anyway, and one lock per partner partition it touched was a statement each.
 */
export async function lockChainHeads(tx: PoolClient): Promise<{ partnerId: string; partition: number; seq: number; digest: Buffer }[]> {
  const { rows } = await tx.query<{ partner_id: string; partition: number; last_seq: number; last_digest: Buffer }>(
    "SELECT partner_id, partition, last_seq, last_digest FROM feed_partitions ORDER BY partner_id, partition FOR UPDATE",
  );
  return rows.map((r) => ({ partnerId: r.partner_id, partition: r.partition, seq: r.last_seq, digest: r.last_digest }));
}

export interface ChainHeadUpdate {
  readonly partnerId: string;
  readonly partition: number;
  readonly seq: number;
  readonly digest: Buffer;
}

export async function storeChainHeads(tx: PoolClient, heads: readonly ChainHeadUpdate[]): Promise<void> {
  if (!heads.length) return;
  await tx.query(
    `INSERT INTO feed_partitions (partner_id, partition, last_seq, last_digest)
     SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])
     ON CONFLICT (partner_id, partition) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_digest = EXCLUDED.last_digest`,
    [heads.map((h) => h.partnerId), heads.map((h) => h.partition), heads.map((h) => h.seq), heads.map((h) => h.digest)],
  );
}

/** Signed feed records for Kafka, to their explicit feed partition. */
export async function enqueueFeedRecords(
  tx: PoolClient,
  messages: readonly { topic: string; key: string; value: Buffer; partition: number }[],
): Promise<void> {
  if (!messages.length) return;
  await tx.query(
    `INSERT INTO feed_outbox (topic, message_key, message_value, message_partition)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[])`,
    [messages.map((m) => m.topic), messages.map((m) => m.key), messages.map((m) => m.value), messages.map((m) => m.partition)],
  );
}

/** The recordRefs issued to partners (feedback names a record by the ref its partner received); known ones are kept. */
export async function recordDisclosedRefs(
  tx: PoolClient,
  refs: readonly { partnerId: string; recordRef: string; recordId: string }[],
): Promise<void> {
  if (!refs.length) return;
  await tx.query(
    `INSERT INTO disclosed_refs (partner_id, record_ref, record_id) SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
     ON CONFLICT DO NOTHING`,
    [refs.map((r) => r.partnerId), refs.map((r) => r.recordRef), refs.map((r) => r.recordId)],
  );
}

/** Signed feed records for the next S3 delta. */
export async function appendFeedLog(
  tx: PoolClient,
  log: readonly { partnerId: string; partition: number; seq: number; body: Buffer }[],
): Promise<void> {
  if (!log.length) return;
  await tx.query(
    `INSERT INTO feed_log (partner_id, partition, seq, body) SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])`,
    [log.map((l) => l.partnerId), log.map((l) => l.partition), log.map((l) => l.seq), log.map((l) => l.body)],
  );
}

// The apply step, reconciliation and backfill (processor.ts).

/** Counts a record entitled to a partner whose category has no mapping in the partner's scheme. */
export async function countUnmappable(tx: PoolClient, partnerId: string, category: string): Promise<void> {
  await tx.query(
    `INSERT INTO unmappable_counts (partner_id, category, count) VALUES ($1, $2, 1)
     ON CONFLICT (partner_id, category) DO UPDATE SET count = unmappable_counts.count + 1`,
    [partnerId, category],
  );
}

/** Queues an encoded Rejection (no key, no explicit partition). */
export async function enqueueRejection(tx: PoolClient, topic: string, rejection: Buffer): Promise<void> {
  await tx.query("INSERT INTO feed_outbox (topic, message_key, message_value) VALUES ($1, NULL, $2)", [topic, rejection]);
}

/** Stores the latest applied revision (and its bytes) of each record. */
export async function storeDistributedRecords(
  tx: PoolClient,
  latest: ReadonlyMap<string, { revision: number; bytes: Buffer }>,
): Promise<void> {
  if (!latest.size) return;
  await tx.query(
    `INSERT INTO distributed_records (record_id, revision, body) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[])
     ON CONFLICT (record_id) DO UPDATE SET revision = EXCLUDED.revision, body = EXCLUDED.body`,
    [[...latest.keys()], [...latest.values()].map((l) => l.revision), [...latest.values()].map((l) => l.bytes)],
  );
}

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
  const { rows: prior } = await tx.query<{ version: number }>("SELECT version FROM policy_applied WHERE partner_id = $1", [partnerId]);
  await tx.query(
    "INSERT INTO policy_applied (partner_id, version) VALUES ($1, $2) ON CONFLICT (partner_id) DO UPDATE SET version = EXCLUDED.version",
    [partnerId, version],
  );
  return prior[0]?.version ?? null;
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
