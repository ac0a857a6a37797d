/**
 * How far behind its Kafka feed a partner's sink is (DESIGN guarantee 4: tombstones must outlive
 * the slowest partner's lag). The sink commits its group's offsets to Kafka after each applied batch
 * so the hub can see this. A partner whose position fell below the log start has lost records to
 * retention, REMOVE tombstones included, and must re-bootstrap from a snapshot.
 */
export type PartitionLagState = "ok" | "behind" | "lost" | "never-read";

export interface PartitionLag {
  readonly partition: number;
  /** Next offset the partner will read; null if its group never committed one. */
  readonly position: number | null;
  readonly low: number;
  readonly high: number;
  /** Records published that the partner has not applied. */
  readonly lag: number;
  readonly state: PartitionLagState;
}

export function partitionLag(end: { partition: number; low: string; high: string }, committed: string | undefined): PartitionLag {
  const low = Number(end.low);
  const high = Number(end.high);
  const position = committed !== undefined && Number(committed) >= 0 ? Number(committed) : null;
  const from = position ?? low;
  const lag = Math.max(0, high - from);
  // Never read: fine while nothing has been deleted from the start of the partition.
  const lost = position === null ? low > 0 : position < low;
  const state: PartitionLagState = lost ? "lost" : position === null ? (high > low ? "never-read" : "ok") : lag > 0 ? "behind" : "ok";
  return { partition: end.partition, position, low, high, lag, state };
}

/** One partner's feed: its partitions, and whether any of them lost records to retention. */
export function feedLag(
  ends: readonly { partition: number; low: string; high: string }[],
  committed: ReadonlyMap<number, string>,
): { partitions: PartitionLag[]; lag: number; lost: boolean } {
  const partitions = [...ends].sort((a, b) => a.partition - b.partition).map((e) => partitionLag(e, committed.get(e.partition)));
  return { partitions, lag: partitions.reduce((n, p) => n + p.lag, 0), lost: partitions.some((p) => p.state === "lost") };
}
