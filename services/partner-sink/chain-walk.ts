/**
 * What the sink decides about one feed partition's batch, before anything is written. Records are
 * taken in offset order against the partition's chain (verifier.ts): each one is applied, skipped
 * as a duplicate, refused with an alert, or halts the partition (a gap or a broken chain: nothing
 * after it is applied). Pure: applier.ts reads the state it needs and writes what the walk decided.
 *
 * A signed record is verified on its own. An unsigned one (the chain-signed form, see
 * shared/wire/feed-chain.ts) waits as a candidate at its seq until a verified record links back to
 * it: from that record, each prevDigest must be the digest of a candidate one seq lower, down to
 * the chain head, and then the whole run applies. A candidate the run passes over is refused; a
 * run that cannot reach the head halts at its lowest record (SEQ_GAP, or CHAIN_BROKEN when it
 * reaches the head with another prevDigest). Unsigned records still waiting at the end of the batch
 * are left to be read again: `next` stays at the first of them. An alert judged on a record's own
 * is given once, on its first reading (offsets below `judgedTo` were read before).
 */
import type avro from "avsc";
import { reasonOf } from "../shared/errors.ts";
import type { ReasonCode } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { feedRecordDigest, isChainAuthenticated, stillAuthenticable } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { checkSigned, checkUnsigned, placeOnChain } from "./verifier.ts";
import type { ChainState, TrustedHubKey } from "./verifier.ts";

/** A message decoded, or the reason it could not be. */
export interface Decoded {
  readonly offset: number;
  readonly record: FeedRecord | null;
  readonly writerType: avro.Type;
  readonly error: unknown;
}

export interface Alert {
  readonly partition: number;
  readonly seq: number | null;
  readonly offset: number;
  readonly reason: string;
  readonly detail: string;
}

export interface Halt {
  readonly reason: string;
  readonly seq: number;
  readonly offset: number;
  readonly prevDigest: Buffer;
}

/** What checking one partition's batch against its chain decided. */
export interface ChainWalk {
  readonly partition: number;
  applied: number;
  duplicates: number;
  refused: number;
  /** Where the next batch starts: after the last record dealt with, at the halting record, or at the first unsigned record still waiting. */
  next: number;
  lastSeq: number;
  lastDigest: Buffer;
  readonly alerts: Alert[];
  halt: Halt | null;
  /** Final state per hash ("alg:value") in this batch (the chain orders changes to the same hash). */
  readonly finalState: Map<string, FeedRecord>;
  readonly newlyApplied: { seq: number; digest: Buffer }[];
  /** Offsets below this have been read: their own refusals are not alerted again. */
  judgedTo: number;
}

/** The partition's chain state, and how far its records have been read before. */
export interface WalkState extends Required<ChainState> {
  readonly judgedTo: number;
}

/** What the walk needs besides the records. */
export interface WalkContext {
  readonly partnerId: string;
  readonly keys: readonly TrustedHubKey[];
  readonly logger: Logger;
  readonly now: Date;
}

export function decode(codec: AvroCodec, m: { offset: string; value: Buffer | null }): Decoded {
  try {
    const d = codec.decode("FeedRecord", m.value ?? Buffer.alloc(0));
    return { offset: Number(m.offset), record: d.value, writerType: d.writer.type, error: null };
  } catch (err) {
    return { offset: Number(m.offset), record: null, writerType: codec.schema("FeedRecord").type, error: err };
  }
}

/**
 * Walks one partition's decoded records in offset order from its chain state. `appliedDigests`
 * holds the digests already applied at the seqs of these records (an identical redelivery is a
 * duplicate, other content at an applied seq a reorder); the walk adds those it applies.
 */
export function walkChain(
  ctx: WalkContext,
  partition: number,
  storedOffset: number,
  decoded: readonly Decoded[],
  state: WalkState,
  appliedDigests: Map<number, Buffer>,
): ChainWalk {
  const walker = new Walker(ctx, partition, storedOffset, state, appliedDigests);
  for (const d of decoded) if (!walker.take(d)) break;
  return walker.finish();
}

/** A record with its place in the batch and its chain digest. */
interface Candidate {
  readonly offset: number;
  readonly record: FeedRecord;
  readonly digest: Buffer;
}

/**
 * A judgement to report: `own` ones (on the record alone) only on a record's first reading; the
 * others (a run resolved, a halt) whenever made, since they are made once.
 */
interface Judged {
  readonly offset: number;
  readonly own: boolean;
  readonly alert: Alert | null;
}

class Walker {
  private readonly walk: ChainWalk;
  /** Unsigned records past the chain head, by seq, waiting for a verified record to link back to them. */
  private readonly pending = new Map<number, Candidate[]>();
  private readonly judged: Judged[] = [];
  private end: number;
  private readonly ctx: WalkContext;
  private readonly partition: number;
  private readonly state: WalkState;
  private readonly appliedDigests: Map<number, Buffer>;

  constructor(ctx: WalkContext, partition: number, storedOffset: number, state: WalkState, appliedDigests: Map<number, Buffer>) {
    this.ctx = ctx;
    this.partition = partition;
    this.state = state;
    this.appliedDigests = appliedDigests;
    this.end = storedOffset;
    this.walk = {
      partition,
      applied: 0,
      duplicates: 0,
      refused: 0,
      next: storedOffset,
      lastSeq: state.lastSeq,
      lastDigest: state.lastDigest,
      alerts: [],
      halt: null,
      finalState: new Map(),
      newlyApplied: [],
      judgedTo: state.judgedTo,
    };
  }

  /** Judges one record; false once the partition halted (nothing after it is taken). */
  take(d: Decoded): boolean {
    this.end = d.offset + 1;
    if (!d.record) {
      this.refuse({ offset: d.offset, seq: null }, reasonOf(d.error), (d.error as Error).message, true);
      return true;
    }
    const record = d.record;
    const unsigned = isChainAuthenticated(record);
    const context = { partnerId: this.ctx.partnerId, partition: this.partition, keys: this.ctx.keys, now: this.ctx.now };
    const own = unsigned ? checkUnsigned(record, context) : checkSigned(record, d.writerType, context);
    const at = { offset: d.offset, seq: record.seq };
    if (own) {
      this.refuse(at, own.reason, own.detail, true);
      return true;
    }
    const c: Candidate = { offset: d.offset, record, digest: feedRecordDigest(d.writerType, record) };
    if (record.seq <= this.walk.lastSeq) {
      const state = { lastSeq: this.walk.lastSeq, lastDigest: this.walk.lastDigest, bootstrapSeq: this.state.bootstrapSeq };
      const verdict = placeOnChain(record, c.digest, state, this.appliedDigests.get(record.seq));
      if (verdict.kind === "refuse") this.refuse(at, verdict.reason, verdict.detail, true);
      else this.judged.push({ offset: d.offset, own: true, alert: null });
      return true;
    }
    if (unsigned) {
      this.pending.set(record.seq, [...(this.pending.get(record.seq) ?? []), c]);
      return true;
    }
    return this.authenticate(c);
  }

  /**
   * A verified record past the chain head: follows prevDigest down through the waiting candidates
   * to the head, then applies the run, or halts at the lowest record the run reaches.
   */
  private authenticate(signed: Candidate): boolean {
    const run: Candidate[] = [];
    let need = signed.record.prevDigest;
    for (let seq = signed.record.seq - 1; seq > this.walk.lastSeq; seq--) {
      const link = this.pending.get(seq)?.find((c) => c.digest.equals(need));
      if (!link) {
        // Whatever waits at this seq is not what the hub signed the chain through.
        for (const c of this.pending.get(seq) ?? []) {
          this.refuse(c, "BAD_SIGNATURE", `seq ${seq}: unsigned and not the record that hub-signed seq ${signed.record.seq} chains to`);
        }
        this.pending.delete(seq);
        const lowest = run.at(-1) ?? signed;
        return this.haltAt(lowest, run, "SEQ_GAP", `expected seq ${this.walk.lastSeq + 1}, got ${lowest.record.seq}`);
      }
      run.push(link);
      need = link.record.prevDigest;
    }
    const lowest = run.at(-1) ?? signed;
    if (!lowest.record.prevDigest.equals(this.walk.lastDigest)) {
      return this.haltAt(lowest, run, "CHAIN_BROKEN", `seq ${lowest.record.seq}: prevDigest does not match the chain`);
    }
    for (const c of [...run.reverse(), signed]) this.apply(c);
    this.settle(signed.record.seq, run);
    return true;
  }

  private apply(c: Candidate): void {
    const w = this.walk;
    w.finalState.set(`${c.record.alg}:${c.record.value}`, c.record);
    this.appliedDigests.set(c.record.seq, c.digest);
    w.newlyApplied.push({ seq: c.record.seq, digest: c.digest });
    w.lastSeq = c.record.seq;
    w.lastDigest = c.digest;
    w.applied++;
  }

  /** Candidates the chain head has passed: a copy of what was applied is a duplicate, anything else refused. */
  private settle(signedSeq: number, run: readonly Candidate[]): void {
    for (const [seq, candidates] of this.pending) {
      if (seq > this.walk.lastSeq) continue;
      for (const c of candidates) {
        if (run.includes(c)) continue;
        if (this.appliedDigests.get(seq)?.equals(c.digest)) this.judged.push({ offset: c.offset, own: false, alert: null });
        else this.refuse(c, "BAD_SIGNATURE", `seq ${seq}: unsigned and not on the chain the hub signed up to seq ${signedSeq}`);
      }
      this.pending.delete(seq);
    }
  }

  /** Halts at `c`, the lowest record a verified record's run reached (its prevDigest is the hub's). */
  private haltAt(c: Candidate, run: readonly Candidate[], reason: ReasonCode, detail: string): false {
    this.refuse(c, reason, detail);
    this.walk.halt = { reason: `${reason}: ${detail}`, seq: c.record.seq, offset: c.offset, prevDigest: c.record.prevDigest };
    // Unsigned records before the halting one are not read again, and nothing can reach them now.
    for (const candidates of this.pending.values()) {
      for (const w of candidates) {
        if (w.offset < c.offset && !run.includes(w)) {
          this.refuse(w, "BAD_SIGNATURE", `seq ${w.record.seq}: unsigned, and the partition halted at seq ${c.record.seq}`);
        }
      }
    }
    return false;
  }

  private refuse(at: { offset: number; seq: number | null } | Candidate, reason: string, detail: string, own = false): void {
    const seq = "record" in at ? at.record.seq : at.seq;
    this.judged.push({ offset: at.offset, own, alert: { partition: this.partition, seq, offset: at.offset, reason, detail } });
  }

  /**
   * Where the next batch starts and what is reported. After a halt: at the halting record, and
   * nothing judged past it (read again after a resume). Otherwise at the first unsigned record that
   * a signed record still to come can authenticate, or after the batch; waiting records no signed
   * record can reach any more are refused.
   */
  finish(): ChainWalk {
    const w = this.walk;
    let reportBelow = Number.POSITIVE_INFINITY;
    if (w.halt) {
      w.next = w.halt.offset;
      reportBelow = w.halt.offset + 1;
      w.judgedTo = Math.max(w.judgedTo, w.halt.offset);
    } else {
      const waiting: number[] = [];
      for (const [seq, candidates] of this.pending) {
        for (const c of candidates) {
          if (stillAuthenticable(w.lastSeq, seq)) waiting.push(c.offset);
          else this.refuse(c, "BAD_SIGNATURE", `seq ${seq}: unsigned, and no hub-signed record can reach it from seq ${w.lastSeq}`, true);
        }
      }
      w.next = waiting.length ? Math.min(...waiting) : this.end;
      w.judgedTo = Math.max(w.judgedTo, this.end);
    }
    // In offset order, as an operator reads them (a run's refusals are found from its signed end).
    for (const j of [...this.judged].sort((a, b) => a.offset - b.offset)) {
      if (j.offset >= reportBelow || (j.own && j.offset < this.state.judgedTo)) continue;
      if (!j.alert) {
        w.duplicates++;
        continue;
      }
      w.refused++;
      w.alerts.push(j.alert);
      this.ctx.logger.error(
        { partnerId: this.ctx.partnerId, partition: this.partition, seq: j.alert.seq, reason: j.alert.reason },
        "feed record refused",
      );
    }
    return w;
  }
}
