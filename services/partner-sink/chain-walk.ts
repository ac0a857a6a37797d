/**
 * What the sink decides about one feed partition's batch, before anything is written: each
 * decoded record is checked in offset order against the partition's chain (verifier.ts) and is
 * applied, skipped as a duplicate, refused with an alert, or halts the partition (a gap or broken
 * chain: nothing after it is applied). Pure: applier.ts reads the state it needs and writes what
 * the walk decided.
 */
import type avro from "avsc";
import { reasonOf } from "../shared/errors.ts";
import type { Logger } from "../shared/logging.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { verifyFeedRecord } from "./verifier.ts";
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
  /** Where the next batch starts: after the last record dealt with, or at the halting record. */
  next: number;
  lastSeq: number;
  lastDigest: Buffer;
  readonly alerts: Alert[];
  halt: Halt | null;
  /** Final state per hash ("alg:value") in this batch (the chain orders changes to the same hash). */
  readonly finalState: Map<string, FeedRecord>;
  readonly newlyApplied: { seq: number; digest: Buffer }[];
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
  state: Required<ChainState>,
  appliedDigests: Map<number, Buffer>,
): ChainWalk {
  const walk: ChainWalk = {
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
  };
  for (const d of decoded) {
    if (!d.record) {
      walk.refused++;
      walk.alerts.push({ partition, seq: null, offset: d.offset, reason: reasonOf(d.error), detail: (d.error as Error).message });
      walk.next = d.offset + 1;
      continue;
    }
    const record = d.record;
    const prior = appliedDigests.get(record.seq);
    const verdict = verifyFeedRecord(record, d.writerType, {
      partnerId: ctx.partnerId,
      partition,
      keys: ctx.keys,
      state: { lastSeq: walk.lastSeq, lastDigest: walk.lastDigest, bootstrapSeq: state.bootstrapSeq },
      ...(prior ? { appliedDigest: prior } : {}),
      now: ctx.now,
    });
    if (verdict.kind === "refuse") {
      walk.refused++;
      walk.alerts.push({ partition, seq: record.seq, offset: d.offset, reason: verdict.reason, detail: verdict.detail });
      ctx.logger.error({ partnerId: ctx.partnerId, partition, seq: record.seq, reason: verdict.reason }, "feed record refused");
      if (verdict.halt) {
        walk.halt = { reason: `${verdict.reason}: ${verdict.detail}`, seq: record.seq, offset: d.offset, prevDigest: record.prevDigest };
        break; // the offset stays at this record: nothing after a gap is applied
      }
    } else if (verdict.kind === "duplicate") {
      walk.duplicates++;
    } else {
      walk.finalState.set(`${record.alg}:${record.value}`, record);
      appliedDigests.set(record.seq, verdict.digest);
      walk.newlyApplied.push({ seq: record.seq, digest: verdict.digest });
      walk.lastSeq = record.seq;
      walk.lastDigest = verdict.digest;
      walk.applied++;
    }
    walk.next = d.offset + 1;
  }
  return walk;
}
