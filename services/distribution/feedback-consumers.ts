/**
 * One exactly-once consumer per partner feedback topic (the shared consumer takes one topic), each
 * in its own consumer group, started when the partner's policy first appears. The feedback topic
 * is provisioned first, beside the partner's feed topic; only the partner's principal may write it
 * (shared/kafka-access.ts).
 */
import type { Admin, Kafka } from "kafkajs";
import type { ExactlyOnceConsumerOptions, RunningConsumer } from "../shared/exactly-once-consumer.ts";
import { startExactlyOnceConsumer } from "../shared/exactly-once-consumer.ts";
import { DISTRIBUTION_APPLY_LOCK } from "../shared/advisory-locks.ts";
import { consumerGroups } from "../shared/kafka-access.ts";
import { provisionTopics } from "../shared/kafka.ts";
import { feedbackTopicSpec } from "../shared/topics.ts";
import type { TopicPlanOptions } from "../shared/topics.ts";
import type { FetchedMessage } from "../shared/exactly-once-step.ts";
import { applyFeedbackBatch } from "./feedback-processor.ts";
import type { FeedbackDeps, FeedbackResult } from "./feedback-processor.ts";

export interface FeedbackConsumersOptions {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly deps: FeedbackDeps;
  readonly namespace: string;
  readonly topicPlan: TopicPlanOptions;
  /** After a round that issued feed records or dead-letter records: wake the outbox relay. */
  readonly afterCommit: (result: FeedbackResult) => void;
  readonly tuning: Pick<ExactlyOnceConsumerOptions<FetchedMessage, unknown>, "maxBytesPerPartition" | "sessionTimeoutMs">;
}

export interface FeedbackConsumers {
  /** Starts consumers for the partners that have none yet. */
  ensure(partnerIds: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

export function feedbackConsumers(o: FeedbackConsumersOptions): FeedbackConsumers {
  const running = new Map<string, RunningConsumer>();
  const { deps } = o;
  return {
    async ensure(partnerIds) {
      const fresh = partnerIds.filter((p) => !running.has(p));
      if (!fresh.length) return;
      await provisionTopics(
        o.admin,
        fresh.map((p) => feedbackTopicSpec(p, o.topicPlan, deps.topics)),
      );
      for (const partnerId of fresh) {
        const consumer = await startExactlyOnceConsumer<FetchedMessage, FeedbackResult>({
          kafka: o.kafka,
          pool: deps.pool,
          groupId: consumerGroups(o.namespace).feedback(partnerId),
          topic: deps.topics.feedback(partnerId),
          logger: deps.logger.child({ partnerId }),
          applyLock: DISTRIBUTION_APPLY_LOCK,
          apply: (tx, batches) => applyFeedbackBatch(deps, tx, batches),
          afterCommit: ({ result }) => {
            if (result.accepted || result.refused) deps.logger.info({ partnerId, ...result }, "partner feedback applied");
            o.afterCommit(result);
          },
          // Feedback is rare: a round starts as soon as something arrives.
          minRoundIntervalMs: 0,
          ...o.tuning,
        });
        running.set(partnerId, consumer);
      }
    },
    async stop() {
      // Together: each waits for its fetch in hand (up to the consumer's fetch wait).
      await Promise.all([...running.values()].map((c) => c.disconnect()));
      running.clear();
    },
  };
}
