/**
 * What a partner engineer does to the sink's database by hand (`bin/hashrelay-sink`, cli.ts):
 * read each feed partition's state, list the alerts, and resume a halted partition. The
 * decisions (what a resume means, what it refuses) are pure functions, unit-tested in
 * operator.test.ts; the database functions around them are thin.
 *
 * Resuming never weakens verification: it only moves the partition's chain head (last_seq,
 * last_digest) to where the halting record says the hub's chain was, taken from that record,
 * which had passed the hub signature checks before its seq or chain was looked at. The sink then
 * verifies that record again like any other, signature first.
 */
import type { ReasonCode } from "../shared/errors.ts";
import { inTransaction } from "../shared/postgres.ts";
import type { Pool, Queryable } from "../shared/postgres.ts";

/** The reason code of sink_alerts rows written by `resume` (services/shared/errors.ts). */
export const RESUMED: ReasonCode = "RESUMED";

/** One row of feed_state as the operator functions see it. */
export interface PartitionState {
  readonly partition: number;
  readonly lastSeq: number;
  readonly lastDigest: Buffer;
  readonly bootstrapSeq: number;
  readonly haltedReason: string | null;
  /** Seq, Kafka offset and prevDigest of the record that halted the partition (null for halts recorded before migration 003). */
  readonly haltedSeq: number | null;
  readonly haltedOffset: number | null;
  readonly haltedPrevDigest: Buffer | null;
  readonly haltedAt: Date | null;
}

export type HaltCode = "SEQ_GAP" | "CHAIN_BROKEN";

/** The reason code of a halt (halted_reason is "<CODE>: <detail>"), or null when it is not one the sink writes. */
export function haltCodeOf(haltedReason: string | null): HaltCode | null {
  const m = /^([A-Z_]+):/.exec(haltedReason ?? "");
  return m?.[1] === "SEQ_GAP" || m?.[1] === "CHAIN_BROKEN" ? m[1] : null;
}

/** "13" or "13..14". */
export function seqRange(from: number, to: number): string {
  return from === to ? `${from}` : `${from}..${to}`;
}

export const shortHex = (b: Buffer | null): string => (b ? b.toString("hex").slice(0, 16) : "-");

/** The seqs a SEQ_GAP halt is missing (never arrived), or null when the halt is not a usable gap. */
export function missingSeqs(s: PartitionState): { from: number; to: number; count: number } | null {
  if (haltCodeOf(s.haltedReason) !== "SEQ_GAP" || s.haltedSeq === null || s.haltedSeq <= s.lastSeq + 1) return null;
  return { from: s.lastSeq + 1, to: s.haltedSeq - 1, count: s.haltedSeq - 1 - s.lastSeq };
}

export interface ResumeOptions {
  /** Why (free text, required): goes into the RESUMED alert. */
  readonly why: string;
  /** Who: goes into the RESUMED alert. */
  readonly operator: string;
  /** Accept that the seqs missing before a SEQ_GAP halt are skipped for good. */
  readonly acceptGap: boolean;
  /** Accept the hub's chain after a CHAIN_BROKEN halt although this database's history differs from it. */
  readonly acceptChainBreak: boolean;
}

export type ResumePlan =
  | { readonly kind: "refuse"; readonly message: string }
  | {
      readonly kind: "resume";
      /** The chain head the partition continues from: the record at `alert.seq` is the next one applied. */
      readonly lastSeq: number;
      readonly lastDigest: Buffer;
      readonly alert: { readonly partition: number; readonly seq: number | null; readonly offset: number | null; readonly detail: string };
      /** One line for the operator. */
      readonly summary: string;
    };

const REBOOTSTRAP_ADVICE =
  "Recommended instead: re-bootstrap this partner database from the hub's latest signed snapshot (an empty database; the sink loads the snapshot, or replays the topic when there is none; README, partner-sink)";

/**
 * What `resume` does to one partition. The semantics:
 * - SEQ_GAP at seq S (last applied L, S > L + 1): seqs L+1..S-1 never arrived. Refused unless
 *   `acceptGap`; then the chain head becomes (S-1, prevDigest of the halting record), so the
 *   halting record S is applied next and the partition continues from it. The skipped seqs are
 *   named in the alert; if one of them turns up later it is refused as SEQ_REORDER.
 * - CHAIN_BROKEN at seq S = L + 1: a hub-signed record whose prevDigest is not the digest of the
 *   record applied here at L, i.e. the hub's history of this partition differs from this database's.
 *   Refused unless `acceptChainBreak` (with advice to re-bootstrap); then the chain head becomes
 *   (L, prevDigest of the halting record) and the partition continues from S, keeping the rows
 *   applied so far.
 * - a halt without recorded details (from before these columns, or set by hand): the halt is
 *   cleared and nothing else changes, so the sink verifies the record at its stored offset again;
 *   if the cause remains it halts again, this time with the details.
 */
export function planResume(s: PartitionState | undefined, partition: number, o: ResumeOptions): ResumePlan {
  if (!s)
    return {
      kind: "refuse",
      message: `partition ${partition} has no feed_state row in this database (has the sink applied anything to it?)`,
    };
  if (!s.haltedReason)
    return { kind: "refuse", message: `partition ${partition} is not halted (last seq ${s.lastSeq}); nothing to resume` };
  const why = o.why.trim();
  if (!why) return { kind: "refuse", message: "--reason must say why the partition is resumed (it is recorded in sink_alerts)" };
  const who = `resumed by ${o.operator}: ${why}`;
  const code = haltCodeOf(s.haltedReason);
  const at = s.haltedSeq !== null ? `seq ${s.haltedSeq} (Kafka offset ${s.haltedOffset ?? "?"})` : "";

  if (code === null || s.haltedSeq === null || s.haltedPrevDigest === null) {
    return {
      kind: "resume",
      lastSeq: s.lastSeq,
      lastDigest: s.lastDigest,
      alert: {
        partition,
        seq: s.haltedSeq,
        offset: s.haltedOffset,
        detail: `${who}; halt "${s.haltedReason}" cleared without changing the chain (no halt details recorded): the sink verifies the record at its stored offset again and halts again if the cause remains`,
      },
      summary: `partition ${partition}: halt cleared; the sink verifies the record at its stored offset again (chain head unchanged at seq ${s.lastSeq})`,
    };
  }

  if (code === "SEQ_GAP") {
    const gap = missingSeqs(s);
    if (!gap) {
      return {
        kind: "refuse",
        message: `partition ${partition}: the recorded SEQ_GAP at ${at} does not follow the last applied seq ${s.lastSeq}; feed_state changed since the halt: inspect it before resuming`,
      };
    }
    const lost = `seq${gap.count > 1 ? "s" : ""} ${seqRange(gap.from, gap.to)} (${gap.count} record${gap.count > 1 ? "s" : ""})`;
    if (!o.acceptGap) {
      return {
        kind: "refuse",
        message:
          `partition ${partition} halted on SEQ_GAP at ${at}: ${lost} never arrived, so their changes are missing from this database. ` +
          `Resuming skips them for good: the partition continues with seq ${s.haltedSeq} and the skipped seqs are recorded in sink_alerts. ` +
          `If that is acceptable (e.g. the hub confirms they are lost, and you will reconcile or re-bootstrap), run again with --accept-gap.`,
      };
    }
    return {
      kind: "resume",
      lastSeq: s.haltedSeq - 1,
      lastDigest: s.haltedPrevDigest,
      alert: {
        partition,
        seq: s.haltedSeq,
        offset: s.haltedOffset,
        detail: `${who}; accepted SEQ_GAP: skipped ${lost}, never applied; continuing at seq ${s.haltedSeq} (Kafka offset ${s.haltedOffset ?? "?"}) after chain head ${shortHex(s.haltedPrevDigest)}`,
      },
      summary: `partition ${partition}: resumed at seq ${s.haltedSeq} (Kafka offset ${s.haltedOffset ?? "?"}); skipped ${lost}`,
    };
  }

  // CHAIN_BROKEN
  if (s.haltedSeq !== s.lastSeq + 1) {
    return {
      kind: "refuse",
      message: `partition ${partition}: the recorded CHAIN_BROKEN at ${at} does not follow the last applied seq ${s.lastSeq}; feed_state changed since the halt: inspect it before resuming`,
    };
  }
  if (!o.acceptChainBreak) {
    return {
      kind: "refuse",
      message:
        `partition ${partition} halted on CHAIN_BROKEN at ${at}: the hub-signed record's prevDigest ${shortHex(s.haltedPrevDigest)} is not the digest ${shortHex(s.lastDigest)} ` +
        `of seq ${s.lastSeq} as applied here, so this database's history of the partition differs from the hub's${o.acceptGap ? " (--accept-gap is for SEQ_GAP halts; nothing is missing here)" : ""}. ` +
        `${REBOOTSTRAP_ADVICE}. To go on anyway from seq ${s.haltedSeq}, keeping the rows applied so far, run again with --accept-chain-break.`,
    };
  }
  return {
    kind: "resume",
    lastSeq: s.lastSeq,
    lastDigest: s.haltedPrevDigest,
    alert: {
      partition,
      seq: s.haltedSeq,
      offset: s.haltedOffset,
      detail: `${who}; accepted CHAIN_BROKEN: adopted the hub's chain head ${shortHex(s.haltedPrevDigest)} for seq ${s.lastSeq} in place of ${shortHex(s.lastDigest)} applied here; continuing at seq ${s.haltedSeq} (Kafka offset ${s.haltedOffset ?? "?"}); rows applied up to seq ${s.lastSeq} kept`,
    },
    summary: `partition ${partition}: resumed at seq ${s.haltedSeq} (Kafka offset ${s.haltedOffset ?? "?"}) on the hub's chain; rows applied before were kept (re-bootstrap to be sure they match the hub)`,
  };
}

// ---------------------------------------------------------------------------------------------
// status

export interface PartitionStatus {
  readonly partition: number;
  readonly lastSeq: number;
  readonly chainHead: string;
  readonly bootstrapSeq: number;
  /** Refusals recorded for the partition (RESUMED rows not counted). */
  readonly alerts: number;
  readonly lastAlertAt: string | null;
  readonly halted: null | {
    readonly reason: string;
    readonly code: HaltCode | null;
    readonly seq: number | null;
    readonly offset: number | null;
    readonly at: string | null;
    /** SEQ_GAP: the seqs that never arrived. */
    readonly missing: { readonly from: number; readonly to: number; readonly count: number } | null;
  };
}

export interface SinkStatus {
  readonly partitions: readonly PartitionStatus[];
  readonly totals: { readonly live: number; readonly tombstones: number; readonly alerts: number };
  readonly halted: readonly number[];
}

export function partitionStatus(s: PartitionState, alerts: { count: number; lastAt: Date | null }): PartitionStatus {
  return {
    partition: s.partition,
    lastSeq: s.lastSeq,
    chainHead: shortHex(s.lastDigest),
    bootstrapSeq: s.bootstrapSeq,
    alerts: alerts.count,
    lastAlertAt: alerts.lastAt?.toISOString() ?? null,
    halted: s.haltedReason
      ? {
          reason: s.haltedReason,
          code: haltCodeOf(s.haltedReason),
          seq: s.haltedSeq,
          offset: s.haltedOffset,
          at: s.haltedAt?.toISOString() ?? null,
          missing: missingSeqs(s),
        }
      : null,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}

/** What to type next for a halted partition. */
export function resumeHint(p: PartitionStatus): string {
  const base = `hashrelay-sink resume --partition ${p.partition} --reason "<why>"`;
  if (!p.halted) return "";
  if (p.halted.code === "SEQ_GAP" && p.halted.missing)
    return `${base} --accept-gap   (skips seq ${seqRange(p.halted.missing.from, p.halted.missing.to)} for good)`;
  if (p.halted.code === "CHAIN_BROKEN") return `${base} --accept-chain-break   (or re-bootstrap from a signed snapshot: recommended)`;
  return `${base}   (clears the halt; the record is verified again)`;
}

export function formatStatus(st: SinkStatus): string {
  const lines: string[] = [];
  if (st.partitions.length === 0) {
    lines.push("no feed partition applied yet (feed_state is empty)");
  } else {
    lines.push(
      ...table([
        ["partition", "last seq", "chain head", "bootstrap seq", "alerts", "state"],
        ...st.partitions.map((p) => [
          String(p.partition),
          String(p.lastSeq),
          p.chainHead,
          String(p.bootstrapSeq),
          String(p.alerts),
          p.halted
            ? `HALTED at seq ${p.halted.seq ?? "?"} (Kafka offset ${p.halted.offset ?? "?"})${p.halted.at ? ` since ${p.halted.at}` : ""}: ${p.halted.reason}`
            : "applying",
        ]),
      ]),
    );
  }
  lines.push(`rows: ${st.totals.live} live, ${st.totals.tombstones} tombstones; alerts: ${st.totals.alerts}`);
  const halted = st.partitions.filter((p) => p.halted);
  if (halted.length) {
    lines.push(`${halted.length} partition${halted.length > 1 ? "s" : ""} halted: nothing after the halting record is applied there.`);
    for (const p of halted) {
      if (p.halted?.missing)
        lines.push(
          `  partition ${p.partition}: seq ${seqRange(p.halted.missing.from, p.halted.missing.to)} missing (${p.halted.missing.count} record${p.halted.missing.count > 1 ? "s" : ""})`,
        );
      lines.push(`  inspect: hashrelay-sink alerts --partition ${p.partition}`);
      lines.push(`  resume:  ${resumeHint(p)}`);
    }
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// alerts

export interface AlertRow {
  readonly id: number;
  readonly at: string;
  readonly partition: number | null;
  readonly seq: number | null;
  readonly kafkaOffset: number | null;
  readonly reason: string;
  readonly detail: string;
}

export interface AlertFilter {
  readonly partition?: number;
  readonly since?: Date;
  readonly limit: number;
}

export function formatAlerts(alerts: readonly AlertRow[]): string {
  if (alerts.length === 0) return "no alerts";
  const dash = (v: number | null) => (v === null ? "-" : String(v));
  return table([
    ["time", "partition", "seq", "offset", "reason", "detail"],
    ...alerts.map((a) => [a.at, dash(a.partition), dash(a.seq), dash(a.kafkaOffset), a.reason, a.detail]),
  ]).join("\n");
}

// ---------------------------------------------------------------------------------------------
// database

interface StateRow {
  partition: number;
  last_seq: number;
  last_digest: Buffer;
  bootstrap_seq: number;
  halted_reason: string | null;
  halted_seq: number | null;
  halted_offset: number | null;
  halted_prev_digest: Buffer | null;
  halted_at: Date | null;
}

const STATE_COLUMNS =
  "partition, last_seq, last_digest, bootstrap_seq, halted_reason, halted_seq, halted_offset, halted_prev_digest, halted_at";

function stateOf(r: StateRow): PartitionState {
  return {
    partition: r.partition,
    lastSeq: Number(r.last_seq),
    lastDigest: r.last_digest,
    bootstrapSeq: Number(r.bootstrap_seq),
    haltedReason: r.halted_reason,
    haltedSeq: r.halted_seq === null ? null : Number(r.halted_seq),
    haltedOffset: r.halted_offset === null ? null : Number(r.halted_offset),
    haltedPrevDigest: r.halted_prev_digest,
    haltedAt: r.halted_at,
  };
}

export async function readStatus(db: Queryable): Promise<SinkStatus> {
  const { rows: states } = await db.query<StateRow>(`SELECT ${STATE_COLUMNS} FROM feed_state ORDER BY partition`);
  const { rows: counts } = await db.query<{ partition: number | null; n: number; last_at: Date | null }>(
    "SELECT partition, count(*)::int AS n, max(at) AS last_at FROM sink_alerts WHERE reason <> $1 GROUP BY partition",
    [RESUMED],
  );
  const { rows: totals } = await db.query<{ live: number; tombstones: number }>(
    "SELECT count(*) FILTER (WHERE NOT removed)::int AS live, count(*) FILTER (WHERE removed)::int AS tombstones FROM partner_hashes",
  );
  const byPartition = new Map(counts.map((c) => [c.partition, c]));
  const partitions = states.map((r) => {
    const c = byPartition.get(r.partition);
    return partitionStatus(stateOf(r), { count: c?.n ?? 0, lastAt: c?.last_at ?? null });
  });
  return {
    partitions,
    totals: { live: totals[0]?.live ?? 0, tombstones: totals[0]?.tombstones ?? 0, alerts: counts.reduce((n, c) => n + c.n, 0) },
    halted: partitions.filter((p) => p.halted).map((p) => p.partition),
  };
}

export async function listAlerts(db: Queryable, f: AlertFilter): Promise<AlertRow[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (f.partition !== undefined) where.push(`partition = $${args.push(f.partition)}`);
  if (f.since) where.push(`at >= $${args.push(f.since)}`);
  const { rows } = await db.query<{
    id: number;
    at: Date;
    partition: number | null;
    seq: number | null;
    kafka_offset: number | null;
    reason: string;
    detail: string;
  }>(
    `SELECT id, at, partition, seq, kafka_offset, reason, detail FROM sink_alerts ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT $${args.push(f.limit)}`,
    args,
  );
  // The newest `limit`, shown oldest first.
  return rows.reverse().map((r) => ({
    id: Number(r.id),
    at: r.at.toISOString(),
    partition: r.partition,
    seq: r.seq,
    kafkaOffset: r.kafka_offset,
    reason: r.reason,
    detail: r.detail,
  }));
}

/**
 * Resumes a halted partition in one transaction holding its feed_state row (the sink takes the
 * same lock per batch, so a batch in flight finishes first): plans with `planResume`, moves the
 * chain head, clears the halt and records a RESUMED alert. The running sink notices within
 * PARTNER_RESUME_POLL_MS and fetches the partition again from its stored offset.
 */
export async function resumePartition(pool: Pool, partition: number, o: ResumeOptions): Promise<ResumePlan> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<StateRow>(`SELECT ${STATE_COLUMNS} FROM feed_state WHERE partition = $1 FOR UPDATE`, [partition]);
    const plan = planResume(rows[0] ? stateOf(rows[0]) : undefined, partition, o);
    if (plan.kind === "refuse") return plan;
    await client.query(
      `UPDATE feed_state SET last_seq = $2, last_digest = $3, halted_reason = NULL, halted_seq = NULL, halted_offset = NULL, halted_prev_digest = NULL, halted_at = NULL
        WHERE partition = $1`,
      [partition, plan.lastSeq, plan.lastDigest],
    );
    await client.query("INSERT INTO sink_alerts (partition, seq, kafka_offset, reason, detail) VALUES ($1, $2, $3, $4, $5)", [
      plan.alert.partition,
      plan.alert.seq,
      plan.alert.offset,
      RESUMED,
      plan.alert.detail,
    ]);
    return plan;
  });
}
