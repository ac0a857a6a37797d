/**
 * When the exactly-once consumer (exactly-once-consumer.ts) fetches again after a round: the pure
 * decision, kept apart so that it is tested without Kafka. A consumer fetches only once the
 * batches of its last fetch are handed back, so holding a round's batches after its commit is what
 * makes the next fetch bring what arrived meanwhile, fresh, as one round.
 *
 * - Steady traffic (a round of BUSY_ROUND_MESSAGES or more): the next fetch comes `minIntervalMs`
 *   after the round started, so every round carries one interval's arrivals.
 * - A trickle (a smaller round): the next fetch comes `trickleIntervalMs` after the round started
 *   (0 in every stage but the first, which paces the ones after it: they receive its rounds as
 *   bursts); the first message after a quiet spell is applied at once, since a fetch that waits on
 *   the broker returns as soon as it arrives.
 * - A backlog (as many messages behind the round's batches on Kafka) or a full round (a quarter of
 *   `maxMessages`: a bulk load arriving in the previous stage's bursts): at once, since the next
 *   fetch is full without waiting.
 */

/**
 * A round at least this big means steady traffic. A trickle paced by the first stage reaches the
 * sinks multiplied by fan-out (a round of 3 or 4 submissions is 6 or 8 feed records for a partner
 * taking two algorithms) and stays below it; steady rounds carry a whole interval's arrivals.
 */
export const BUSY_ROUND_MESSAGES = 16;
/** A round of at least this share of maxMessages means a backlog upstream. */
export const FULL_ROUND_SHARE = 0.25;

export interface RoundPacing {
  /** Least time between round starts while traffic is steady; 0: never wait. */
  readonly minIntervalMs: number;
  /** Least time between round starts at a trickle; 0: never wait. */
  readonly trickleIntervalMs: number;
  /** Most messages in one round. */
  readonly maxMessages: number;
}

export interface RoundSize {
  /** Messages the round applied. */
  readonly messages: number;
  /** Messages on Kafka behind the round's batches when they were fetched. */
  readonly behind: number;
}

/** How long after a round's start the next round may start (and so the next fetch be made). */
export function roundSpacingMs(round: RoundSize, pacing: RoundPacing): number {
  if (round.behind >= BUSY_ROUND_MESSAGES || round.messages >= pacing.maxMessages * FULL_ROUND_SHARE) return 0;
  return round.messages >= BUSY_ROUND_MESSAGES ? pacing.minIntervalMs : pacing.trickleIntervalMs;
}

/**
 * How long to wait before starting a round whose batches are in hand: none with a backlog behind
 * them; otherwise until the previous round's spacing has passed (batches from another broker's
 * fetch can arrive while a round is held).
 */
export function waitBeforeRoundMs(
  previous: RoundSize & { readonly startedAt: number },
  behind: number,
  pacing: RoundPacing,
  now: number,
): number {
  if (behind >= BUSY_ROUND_MESSAGES) return 0;
  return Math.max(0, previous.startedAt + roundSpacingMs(previous, pacing) - now);
}
