/**
 * What every phase of the pipeline benchmark shares: its arguments, the stack it runs on, the run's
 * namespace, the admin's Kafka clients and the record of everything the run made (resources.ts),
 * which is what guarantees that a run leaves nothing behind.
 */
import type { Admin, Kafka } from "kafkajs";
import type { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { StackEnv } from "../../test/support/stack.ts";
import type { Args } from "./args.ts";
import type { RunResources } from "./resources.ts";

/** Partners with local Kafka principals; the namespace keeps their feeds and groups apart from other runs. */
export const PARTNERS = { hotline: "hotline-uk", industry: "industry-x" } as const;

/** Submissions sent over HTTP through the whole pipeline before anything is measured. */
export const WARMUP = 200;

export interface Bench {
  readonly args: Args;
  /** Submissions of the steady phase: --rate × --seconds. */
  readonly steadyCount: number;
  readonly env: StackEnv;
  readonly codec: AvroCodec;
  /** Random tag of this run (client id, pseudonym secret). */
  readonly run: string;
  readonly namespace: string;
  readonly started: Date;
  readonly loadBefore: number[];
  readonly resultsDir: string;
  readonly logDir: string;
  /** The hub admin's client: provisioning, the raw baseline, inspection and clean-up. */
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly producer: RecordProducer;
  readonly res: RunResources;
}
