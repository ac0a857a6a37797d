/**
 * Applies a round of the feed (one batch per partition) to the partner's database, inside the
 * exactly-once step's transaction (shared/exactly-once-step.ts, which stores the consumed offsets
 * with it): verified records are upserted or tombstoned; refused ones are recorded as alerts. A gap
 * or broken chain halts its partition at that record (nothing after it applies; the round's other
 * partitions go on) until an operator resumes it (`hashrelay-sink resume`, operator.ts); a forged
 * or reordered record is skipped and alerted. An unsigned tail of the chain-signed form that no
 * signed record has authenticated yet is left to be read again: the partition's stored offset stays
 * at its first record, and the consumer fetches from there. Each partition is judged on its own chain
 * (chain-walk.ts); the writes of all partitions go together, a few statements per round
 * (feed-store.ts).
 */
import type { Applied, ExactlyOnceStep, PartitionBatch, PartitionPosition, UnappliedBatch } from "../shared/exactly-once-step.ts";
import type { Logger } from "../shared/logging.ts";
import type { Pool, PoolClient } from "../shared/postgres.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { decode, walkChain } from "./chain-walk.ts";
import type { ChainWalk, Decoded } from "./chain-walk.ts";
import { readRound, roundReadStatement, writeRound } from "./feed-store.ts";
import type { FeedState } from "./feed-store.ts";
import type { TrustedHubKey } from "./verifier.ts";

export interface SinkDeps {
  readonly pool: Pool;
  readonly codec: AvroCodec;
  readonly partnerId: string;
  readonly consumerGroup: string;
  readonly keys: () => readonly TrustedHubKey[];
  readonly logger: Logger;
}

export interface SinkResult {
  readonly applied: number;
  readonly duplicates: number;
  readonly refused: number;
  /** The reason code of each refusal, for metrics. */
  readonly refusals: readonly string[];
  readonly halted: boolean;
}

const HELD: SinkResult = { applied: 0, duplicates: 0, refused: 0, refusals: [], halted: true };

type FeedMessage = { offset: string; value: Buffer | null };

/**
 * The sink's exactly-once step: the round's chain states and applied digests are read in the
 * step's first round trip, right after its offset lock (readAfterLock), and the apply writes what
 * the walks decided: two round trips and one statement of its own a round. Each message is decoded
 * once for both.
 */
export function feedRoundStep(
  deps: SinkDeps,
): Pick<ExactlyOnceStep<FeedMessage, ReadonlyMap<number, SinkResult>>, "readAfterLock" | "apply"> {
  const decodedOnce = new WeakMap<FeedMessage, Decoded>();
  const decodeOnce = (m: FeedMessage): Decoded => {
    let d = decodedOnce.get(m);
    if (!d) {
      d = decode(deps.codec, m);
      decodedOnce.set(m, d);
    }
    return d;
  };
  return {
    readAfterLock: (batches: readonly PartitionBatch<FeedMessage>[]) =>
      roundReadStatement(
        batches.map((b) => b.partition),
        wantedSeqs(batches.map((b) => ({ partition: b.partition, decoded: b.messages.map(decodeOnce) }))),
      ),
    apply: (tx, batches, _begun, locked) => applyFeedRound(deps, tx, batches, decodeOnce, locked),
  };
}

/** The (partition, seq) pairs of a round's decodable records, whose applied digests the walks compare. */
function wantedSeqs(partitions: readonly { partition: number; decoded: readonly Decoded[] }[]): { partition: number; seq: number }[] {
  return partitions.flatMap(({ partition, decoded }) => decoded.flatMap((d) => (d.record ? [{ partition, seq: d.record.seq }] : [])));
}

/**
 * The partner sink's part of the exactly-once step: locks the round's chain states, walks each
 * partition's unapplied records against its chain, then writes what the walks decided. A halted
 * partition (in this round or an earlier one) is held, its stored offset at the halting record.
 * The result is per partition. `locked`: the rows of the step's readAfterLock.
 */
async function applyFeedRound(
  deps: SinkDeps,
  tx: PoolClient,
  batches: readonly UnappliedBatch<FeedMessage>[],
  decodeMessage: (m: FeedMessage) => Decoded,
  locked: readonly Record<string, unknown>[] | undefined,
): Promise<Applied<ReadonlyMap<number, SinkResult>>> {
  const now = new Date();
  const decodedByPartition = new Map(batches.map((b) => [b.partition, b.messages.map(decodeMessage)]));
  const { states, appliedDigests } = await readRound(
    tx,
    batches.map((b) => b.partition),
    wantedSeqs([...decodedByPartition].map(([partition, decoded]) => ({ partition, decoded }))),
    locked,
  );
  // A partition halted in an earlier round is not read at all: it stays held where it was stored.
  const open = batches
    .filter((b) => !states.get(b.partition)?.haltedReason)
    .map((b) => ({ batch: b, decoded: decodedByPartition.get(b.partition) ?? [] }));
  const ctx = { partnerId: deps.partnerId, keys: deps.keys(), logger: deps.logger, now };
  const walks = new Map<number, ChainWalk>();
  for (const { batch, decoded } of open) {
    const state = states.get(batch.partition);
    if (!state) throw new Error(`feed_state of partition ${batch.partition} was not locked`);
    const applied = appliedDigests.get(batch.partition) ?? new Map<number, Buffer>();
    walks.set(batch.partition, walkChain(ctx, batch.partition, batch.storedOffset, decoded, state, applied));
  }
  await writeWalks(tx, [...walks.values()], states);
  const result = new Map<number, SinkResult>();
  const positions = new Map<number, PartitionPosition>();
  for (const { partition } of batches) {
    const walk = walks.get(partition);
    if (!walk) {
      result.set(partition, HELD);
      positions.set(partition, { nextOffset: null, hold: true });
      continue;
    }
    const halted = walk.halt !== null;
    const refusals = walk.alerts.map((a) => a.reason);
    result.set(partition, { applied: walk.applied, duplicates: walk.duplicates, refused: walk.refused, refusals, halted });
    positions.set(partition, { nextOffset: walk.next, hold: halted });
  }
  return { result, positions };
}

/** Writes what the walks (in partition order) decided, for all partitions in one statement. */
async function writeWalks(tx: PoolClient, walks: readonly ChainWalk[], before: ReadonlyMap<number, FeedState>): Promise<void> {
  // The hub puts every change to a hash on one partition (feedPartitionOf(alg, value, n) in
  // shared/wire/feed-chain.ts, n fixed once the feed exists), so the partitions' final states do not
  // overlap. Should a hash still come on two partitions of a round, the higher partition's record
  // wins (partitions come in ascending order) and no statement touches a row twice.
  const finalState = new Map<string, FeedRecord>();
  for (const w of walks) for (const [hash, record] of w.finalState) finalState.set(hash, record);
  await writeRound(tx, {
    alerts: walks.flatMap((w) => w.alerts),
    halts: walks.flatMap((w) => (w.halt ? [{ partition: w.partition, ...w.halt }] : [])),
    hashes: [...finalState.values()],
    applied: walks.flatMap((w) => w.newlyApplied.map((a) => ({ partition: w.partition, ...a }))),
    heads: walks.filter((w) => w.applied > 0 || w.judgedTo !== before.get(w.partition)?.judgedTo),
  });
}
