/**
 * The kafkajs side of the exactly-once step (exactly-once-step.ts): a consumer whose source of
 * truth for "what was applied" is the service's PostgreSQL (consumer_offsets, written in the same
 * transaction as the state change). On every partition assignment it seeks to the stored offset
 * (the start when there is none). The batches of one fetch, one per partition, are applied as one
 * round (one transaction); after a round its batches are held until the next may start
 * (round-pacing.ts), so that the next fetch brings what arrived meanwhile rather than one message
 * per partition. A partition whose apply stores an earlier next offset than its batch's end
 * (without holding it) is sought back there, so that the rest is read again with what follows.
 * Kafka's committed offset is kept in step about once a second, only so that lag shows up in the
 * usual tools. A service gives only its apply function (and, optionally, work before the
 * transaction and after the commit, and an observer told of each round's size and time, for
 * metrics).
 */
import type { Consumer, ConsumerCrashEvent, EachBatchPayload, Kafka } from "kafkajs";
import { applyExactlyOnce, storedOffsets } from "./exactly-once-step.ts";
import type { ExactlyOnceStep, FetchedMessage, PartitionBatch, PartitionOutcome, Positioned, StepOutcome } from "./exactly-once-step.ts";
import type { Logger } from "./logging.ts";
import type { Pool, Queryable } from "./postgres.ts";
import { roundSpacingMs, waitBeforeRoundMs } from "./round-pacing.ts";
import type { RoundPacing, RoundSize } from "./round-pacing.ts";

export interface ExactlyOnceConsumerOptions<T extends Positioned, R> extends ExactlyOnceStep<T, R> {
  readonly kafka: Kafka;
  readonly pool: Pool;
  readonly groupId: string;
  readonly topic: string;
  readonly logger: Logger;
  /**
   * Work before the transaction, holding no lock (dedup checks signatures here): turns one
   * partition's fetched messages into what `apply` takes. Without it `apply` takes them as they are.
   */
  readonly prepare?: (batch: PartitionBatch) => Promise<readonly T[]>;
  /** After each round's COMMIT: logging, waking an outbox relay. */
  readonly afterCommit?: (outcome: StepOutcome<R>) => void;
  readonly maxBytesPerPartition?: number;
  readonly sessionTimeoutMs?: number;
  /**
   * Least time from the start of one round to the start of the next, once rounds carry several
   * messages (a steady load; round-pacing.ts). 0: never wait.
   */
  readonly minRoundIntervalMs?: number;
  /**
   * Least time from the start of one small round (a trickle) to the start of the next: what arrives
   * meanwhile shares one round rather than paying a transaction, a fetch and a relay send each. A
   * message after a quiet spell is applied at once. 0 (the default): never wait.
   */
  readonly trickleRoundIntervalMs?: number;
  /**
   * How long a fetch waits on the broker for something new (default 2 s): an idle consumer fetches
   * this often. kafkajs also sleeps this long when every assigned partition is paused, so a consumer
   * that pauses partitions to read them again soon (the partner sink) wants it short.
   */
  readonly fetchWaitMs?: number;
  /** Most messages in one round; the batches of a bigger fetch are applied in several. */
  readonly maxRoundMessages?: number;
  /** Told of every round and restart (metrics.ts consumerRoundMetrics); nothing slower than a counter. */
  readonly observer?: RoundObserver;
}

/** What the consumer reports as it goes: the hot path, so counters and histograms only. */
export interface RoundObserver {
  /** A round committed: its messages as fetched (redeliveries included) and its time from BEGIN to COMMIT. */
  committed(messages: number, elapsedSeconds: number): void;
  /** A round rolled back on an error. */
  failed(): void;
  /** The consumer stopped for good and a fresh one is being started. */
  restarted(): void;
}

/** The consumer settings of a service's validated config (config.ts consumerConfigShape). */
export function consumerTuning(config: {
  readonly CONSUMER_MAX_BATCH_BYTES: number;
  readonly CONSUMER_SESSION_TIMEOUT_MS: number;
  readonly CONSUMER_ROUND_MAX_MESSAGES: number;
  readonly CONSUMER_ROUND_INTERVAL_MS: number;
  readonly CONSUMER_TRICKLE_INTERVAL_MS: number;
}): Pick<
  ExactlyOnceConsumerOptions<Positioned, unknown>,
  "maxBytesPerPartition" | "sessionTimeoutMs" | "maxRoundMessages" | "minRoundIntervalMs" | "trickleRoundIntervalMs"
> {
  return {
    maxBytesPerPartition: config.CONSUMER_MAX_BATCH_BYTES,
    sessionTimeoutMs: config.CONSUMER_SESSION_TIMEOUT_MS,
    maxRoundMessages: config.CONSUMER_ROUND_MAX_MESSAGES,
    minRoundIntervalMs: config.CONSUMER_ROUND_INTERVAL_MS,
    trickleRoundIntervalMs: config.CONSUMER_TRICKLE_INTERVAL_MS,
  };
}

/** A running consumer; `disconnect` waits for the round in hand to commit or roll back. */
export interface RunningConsumer {
  disconnect(): Promise<void>;
  /** Partitions held by a `hold` result of the apply function (on the current kafkajs consumer). */
  pausedPartitions(): number[];
  /** Fetches a held partition again, from the offset stored in PostgreSQL. */
  resumePartition(partition: number): Promise<void>;
}

/** More than any topic here has partitions: every batch of a fetch joins the same round. */
const PARTITIONS_PER_ROUND = 64;
const KAFKA_COMMIT_INTERVAL_MS = 1_000;

/**
 * Starts the consumer and keeps it running: kafkajs gives up for good on some errors (a broker
 * restart can end in "Failed to find group coordinator"), which would leave a live process that
 * consumes nothing. Such a crash is logged and a fresh consumer starts after a pause; it resumes
 * from the stored offsets like any other.
 */
export async function startExactlyOnceConsumer<T extends Positioned = FetchedMessage, R = unknown>(
  o: ExactlyOnceConsumerOptions<T, R>,
): Promise<RunningConsumer> {
  let current: Running | null = null;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | null = null;
  // Held partitions of the current consumer; a fresh consumer starts with none (its first batch of
  // a partition that must stay held pauses it again).
  let paused = new Set<number>();
  const launch = async (): Promise<void> => {
    const held = new Set<number>();
    paused = held;
    let running: Running | null = null;
    // Listening from before the first join: a join that fails for good (no group coordinator) ends
    // in a crash while consumer.run() is still being awaited, which kafkajs does not repeat.
    const onCrash = (event: ConsumerCrashEvent) => {
      if (event.payload.restart || stopped) return; // kafkajs restarts it itself
      o.logger.error({ err: event.payload.error }, "consumer stopped for good; starting a new one");
      o.observer?.restarted();
      restartTimer = setTimeout(() => {
        void (running?.stop() ?? Promise.resolve())
          .catch(() => undefined)
          .then(() => (stopped ? undefined : launch()))
          .catch((err: unknown) => {
            o.logger.error({ err }, "consumer restart failed; retrying");
            restartTimer = setTimeout(() => void launch().catch(() => undefined), 5_000);
          });
      }, 2_000);
    };
    running = await runConsumer(o, held, onCrash);
    current = running;
  };
  await launch();
  return {
    async disconnect() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await current?.stop();
    },
    pausedPartitions() {
      return [...paused].sort((a, b) => a - b);
    },
    async resumePartition(partition: number) {
      const consumer = current?.consumer;
      if (!consumer || !paused.has(partition)) return;
      const next = (await storedOffsets(o.pool, o.groupId, o.topic)).get(partition) ?? 0;
      consumer.seek({ topic: o.topic, partition, offset: String(next) });
      consumer.resume([{ topic: o.topic, partitions: [partition] }]);
      paused.delete(partition);
      o.logger.info({ partition, offset: next }, "partition resumed from its stored offset");
    },
  };
}

interface Running {
  readonly consumer: Consumer;
  stop(): Promise<void>;
}

async function runConsumer<T extends Positioned, R>(
  o: ExactlyOnceConsumerOptions<T, R>,
  held: Set<number>,
  onCrash: (event: ConsumerCrashEvent) => void,
): Promise<Running> {
  const consumer = o.kafka.consumer({
    groupId: o.groupId,
    sessionTimeout: o.sessionTimeoutMs ?? 30_000,
    heartbeatInterval: Math.min(3_000, Math.floor((o.sessionTimeoutMs ?? 30_000) / 3)),
    // kafkajs heartbeats only between fetches, and a stop waits for the fetch in hand: 2 s keeps
    // rebalances and stops within a few seconds while an idle consumer fetches only every 2 s.
    maxWaitTimeInMs: o.fetchWaitMs ?? 2_000,
    maxBytesPerPartition: o.maxBytesPerPartition ?? 1_048_576,
    allowAutoTopicCreation: false,
  });
  consumer.on(consumer.events.CRASH, onCrash);
  await consumer.connect();
  await consumer.subscribe({ topic: o.topic, fromBeginning: true });
  const commits = new KafkaOffsetCommits(consumer, o.topic, o.logger);
  const rereads = new Rereads(consumer, o.topic, held);
  let stopping = false;
  const rounds = new Rounds<T, R>({
    run: (batches) => applyExactlyOnce(o.pool, o.groupId, batches, o),
    pacing: {
      minIntervalMs: o.minRoundIntervalMs ?? 0,
      trickleIntervalMs: o.trickleRoundIntervalMs ?? 0,
      maxMessages: o.maxRoundMessages ?? Number.POSITIVE_INFINITY,
    },
    ...(o.observer ? { observer: o.observer } : {}),
    committed: (outcome) => {
      commits.note(outcome.partitions);
      o.afterCommit?.(outcome);
    },
  });

  // Every assignment positions each partition from PostgreSQL, never from Kafka's committed offset:
  // a partition with no stored offset has had nothing applied to this database (a new or restored
  // one, e.g. a partner re-bootstrapping), so it is read from the start whatever the group
  // committed before. Offset 0 below the log start is reset to the earliest offset (fromBeginning).
  let positioned: Promise<void> = Promise.resolve();
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    const assigned = (event.payload.memberAssignment[o.topic] ?? []) as number[];
    positioned = storedOffsets(o.pool, o.groupId, o.topic).then((stored) => {
      for (const partition of assigned) consumer.seek({ topic: o.topic, partition, offset: String(stored.get(partition) ?? 0) });
      o.logger.info({ partitions: assigned }, "partitions assigned; resuming from stored offsets");
    });
    positioned.catch((err: unknown) => o.logger.error({ err }, "could not read stored offsets"));
  });

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: PARTITIONS_PER_ROUND,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
      if (!isRunning() || batch.messages.length === 0) return;
      // A batch fetched before the assignment's seek landed starts at the committed offset: drop it
      // (stale once the seek is registered) and let kafkajs fetch again from the stored offset. If the
      // stored offsets could not be read, throwing makes kafkajs restart the consumer and rejoin.
      await positioned;
      if (isStale()) return;
      const fetched: PartitionBatch = { topic: batch.topic, partition: batch.partition, messages: batch.messages };
      // Without `prepare`, T is FetchedMessage (the type parameter's default).
      const messages = o.prepare ? await o.prepare(fetched) : (fetched.messages as readonly Positioned[] as readonly T[]);
      const behind = Math.max(0, Number(batch.highWatermark) - 1 - Number(batch.lastOffset()));
      const outcome = await rounds.apply({ ...fetched, messages }, behind);
      const last = batch.messages[batch.messages.length - 1];
      if (outcome.hold) {
        // Held: leave the batch unresolved and stop fetching the partition, so that it is read
        // again from its stored offset once resumed (not from wherever the fetch had got to).
        consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
        held.add(batch.partition);
      } else if (last && outcome.nextOffset !== null && Number(outcome.nextOffset) <= Number(last.offset)) {
        // The apply left the end of the batch to be read again (a feed tail not yet authenticated):
        // fetch the partition from the stored offset, after a pause when nothing new came since.
        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: outcome.nextOffset });
        rereads.wait(batch.partition, outcome.nextOffset, last.offset);
      } else {
        rereads.clear(batch.partition);
        if (last) resolveOffset(last.offset);
      }
      // On the way out the group is still joined here (kafkajs leaves it after the last batch).
      if (stopping || !isRunning()) await commits.flush();
      await heartbeat();
    },
  });
  return {
    consumer,
    async stop() {
      stopping = true;
      rereads.stop();
      await commits.flush();
      await consumer.disconnect();
    },
  };
}

interface RoundEntry<T extends Positioned> {
  readonly batch: PartitionBatch<T>;
  /** Messages on the partition after this batch when it was fetched. */
  readonly behind: number;
  resolve(outcome: PartitionOutcome): void;
  reject(err: unknown): void;
}

interface RoundSettings<T extends Positioned, R> {
  run(batches: readonly PartitionBatch<T>[]): Promise<StepOutcome<R>>;
  readonly pacing: RoundPacing;
  readonly observer?: RoundObserver;
  committed(outcome: StepOutcome<R>): void;
}

/**
 * Gathers the batches kafkajs hands over together (one fetch, every partition at once) into
 * rounds of at most `maxMessages` (a batch is never split), and runs rounds one at a time: a batch
 * that arrives while a round is in hand waits for the next. Each batch's promise settles with its
 * partition's outcome, or its round's error.
 */
class Rounds<T extends Positioned, R> {
  private waiting: RoundEntry<T>[] = [];
  private running = false;
  private last: RoundSize & { startedAt: number } = { messages: 0, behind: 0, startedAt: 0 };
  private readonly settings: RoundSettings<T, R>;

  constructor(settings: RoundSettings<T, R>) {
    this.settings = settings;
  }

  apply(batch: PartitionBatch<T>, behind = 0): Promise<PartitionOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ batch, behind, resolve, reject });
      // setImmediate: after the other batches of the same fetch have been handed over too.
      if (this.waiting.length === 1 && !this.running) setImmediate(() => void this.next());
    });
  }

  private async next(): Promise<void> {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const { run, pacing, committed, observer } = this.settings;
    let take = 0;
    let messages = 0;
    for (const e of this.waiting) {
      if (take > 0 && messages + e.batch.messages.length > pacing.maxMessages) break;
      messages += e.batch.messages.length;
      take++;
    }
    const entries = this.waiting.splice(0, take);
    const behind = entries.reduce((n, e) => n + e.behind, 0);
    const wait = waitBeforeRoundMs(this.last, behind, pacing, Date.now());
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const round = { messages, behind, startedAt: Date.now() };
    this.last = round;
    const started = performance.now();
    try {
      const outcome = await run(entries.map((e) => e.batch));
      observer?.committed(messages, (performance.now() - started) / 1000);
      committed(outcome);
      // kafkajs fetches again only once this round's batches are handed back: holding them until
      // the round's spacing has passed lets the next fetch bring what arrives meanwhile.
      const hold = round.startedAt + roundSpacingMs(round, pacing) - Date.now();
      if (hold > 0) await new Promise((r) => setTimeout(r, hold));
      const byPartition = new Map(outcome.partitions.map((p) => [p.partition, p]));
      for (const e of entries) {
        const p = byPartition.get(e.batch.partition);
        if (p) e.resolve(p);
        else e.reject(new Error(`no outcome for partition ${e.batch.partition}`));
      }
    } catch (err) {
      observer?.failed();
      for (const e of entries) e.reject(err);
    } finally {
      this.running = false;
      if (this.waiting.length) setImmediate(() => void this.next());
    }
  }
}

const REREAD_PAUSE_MIN_MS = 50;
const REREAD_PAUSE_MAX_MS = 1_000;

/**
 * Partitions read again from an earlier offset than their batch's end: when a re-read brings
 * nothing beyond the previous one (the same stored offset, the same last message), the partition
 * is paused for a while, doubling up to a second, rather than fetched again at once in a loop.
 */
class Rereads {
  private readonly last = new Map<number, { from: string; to: string; repeats: number }>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly consumer: Consumer;
  private readonly topic: string;
  private readonly held: ReadonlySet<number>;

  constructor(consumer: Consumer, topic: string, held: ReadonlySet<number>) {
    this.consumer = consumer;
    this.topic = topic;
    this.held = held;
  }

  /** After seeking `partition` back to `from` with a batch that ended at `to`. */
  wait(partition: number, from: string, to: string): void {
    const before = this.last.get(partition);
    const repeats = before?.from === from && before.to === to ? before.repeats + 1 : 0;
    this.last.set(partition, { from, to, repeats });
    if (repeats === 0 || this.timers.has(partition)) return;
    this.consumer.pause([{ topic: this.topic, partitions: [partition] }]);
    const timer = setTimeout(
      () => {
        this.timers.delete(partition);
        // A partition held meanwhile stays paused until resumePartition.
        if (!this.held.has(partition)) this.consumer.resume([{ topic: this.topic, partitions: [partition] }]);
      },
      Math.min(REREAD_PAUSE_MAX_MS, REREAD_PAUSE_MIN_MS * 2 ** (repeats - 1)),
    );
    timer.unref();
    this.timers.set(partition, timer);
  }

  clear(partition: number): void {
    this.last.delete(partition);
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

/**
 * Keeps Kafka's committed offsets near PostgreSQL's, for lag tools only: at most one OffsetCommit
 * a second, with the latest next offset of every partition moved since the last one.
 */
class KafkaOffsetCommits {
  private pending = new Map<number, string>();
  private timer: NodeJS.Timeout | null = null;
  private readonly consumer: Consumer;
  private readonly topic: string;
  private readonly logger: Logger;

  constructor(consumer: Consumer, topic: string, logger: Logger) {
    this.consumer = consumer;
    this.topic = topic;
    this.logger = logger;
  }

  note(partitions: readonly PartitionOutcome[]): void {
    for (const p of partitions) if (p.nextOffset !== null) this.pending.set(p.partition, p.nextOffset);
    if (this.pending.size && !this.timer) {
      this.timer = setTimeout(() => void this.flush(), KAFKA_COMMIT_INTERVAL_MS);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0) return;
    const offsets = [...this.pending].map(([partition, offset]) => ({ topic: this.topic, partition, offset }));
    this.pending = new Map();
    await this.consumer
      .commitOffsets(offsets)
      .catch((err: unknown) => this.logger.warn({ err }, "Kafka offset commit failed (PostgreSQL holds the truth)"));
  }
}

/** True once the group's stored offsets reach the end of every partition of the topic (no lag). */
export async function consumerCaughtUp(kafka: Kafka, db: Queryable, group: string, topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const { rows } = await db.query<{ partition: number; next_offset: number }>(
      "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
      [group, topic],
    );
    const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
    return ends.every((e) => Number(e.high) === 0 || (stored.get(e.partition) ?? 0) >= Number(e.high));
  } finally {
    await admin.disconnect();
  }
}
