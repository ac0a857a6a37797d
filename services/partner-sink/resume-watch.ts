/**
 * The sink's resume poll: a halted feed partition is held by the consumer, and an operator clears
 * the halt in feed_state (`hashrelay-sink resume`, operator.ts); this notices that and fetches the
 * partition again from its stored offset, so a resume needs no restart.
 */
import type { RunningConsumer } from "../shared/exactly-once-consumer.ts";
import type { Logger } from "../shared/logging.ts";
import type { Pool } from "../shared/postgres.ts";

/**
 * Every `everyMs`, the held (halted) partitions whose halt an operator has cleared in feed_state
 * are fetched again from their stored offset: a resume needs no restart.
 */
export function watchForResumes(pool: Pool, consumer: RunningConsumer, everyMs: number, logger: Logger): NodeJS.Timeout {
  let busy = false;
  const timer = setInterval(() => {
    const held = consumer.pausedPartitions();
    if (busy || held.length === 0) return;
    busy = true;
    void (async () => {
      const { rows } = await pool.query<{ partition: number }>(
        "SELECT partition FROM feed_state WHERE partition = ANY($1::int[]) AND halted_reason IS NULL",
        [held],
      );
      for (const { partition } of rows) {
        await consumer.resumePartition(partition);
        logger.info({ partition }, "halt cleared by an operator: partition resumed");
      }
    })()
      .catch((err: unknown) => logger.warn({ err }, "could not check halted partitions for a resume; trying again"))
      .finally(() => {
        busy = false;
      });
  }, everyMs);
  timer.unref();
  return timer;
}
