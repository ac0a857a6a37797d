/**
 * DLQ re-drive (DESIGN guarantee 1): rejected records sit on hashes.rejected.v1 with their
 * original bytes; once the cause is fixed (a key registered, an agency added) an operator sends
 * them round again. Re-driven records get no shortcut: dedup-stage rejections go back onto
 * hashes.submitted.v1 and dedup verifies them again; ingest-stage ones go through the intake core
 * again as the agency that sent them, with every check that refused them the first time.
 */
import type { Kafka } from "kafkajs";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { createDurableProducer, readTopicToEnd } from "../shared/kafka.ts";
import type { Rejection } from "../shared/wire/records.ts";
import type { TopicNames } from "../shared/topics.ts";
import { parseSubmissionBatch } from "../shared/wire/submission-json.ts";
import { admitBatch } from "../ingest/intake.ts";
import type { IntakeDeps } from "../ingest/intake.ts";
import { partitionKey } from "../ingest/partition-key.ts";

export interface RedriveFilter {
  readonly reason?: string;
  readonly service?: string;
  readonly agencyId?: string;
  /** Only rejections at or after this time (epoch ms). */
  readonly since?: number;
}

export interface RedriveReport {
  readonly matched: number;
  readonly republished: number;
  readonly readmitted: { accepted: number; duplicates: number; rejected: number };
  readonly skipped: number;
}

/** Every rejection currently on the topic (up to its end when called). */
export async function readRejections(kafka: Kafka, codec: AvroCodec, topic: string): Promise<Rejection[]> {
  return (await readTopicToEnd(kafka, topic, "redrive")).map((value) => codec.decode("Rejection", value).value);
}

export function matches(r: Rejection, f: RedriveFilter): boolean {
  return (
    (!f.reason || r.reason === f.reason) &&
    (!f.service || r.service === f.service) &&
    (!f.agencyId || r.agencyId === f.agencyId) &&
    (!f.since || r.rejectedAt >= f.since)
  );
}

export async function redrive(
  deps: { kafka: Kafka; codec: AvroCodec; topics: TopicNames; intake: IntakeDeps },
  filter: RedriveFilter,
): Promise<RedriveReport> {
  const chosen = (await readRejections(deps.kafka, deps.codec, deps.topics.rejected)).filter((r) => matches(r, filter));
  const toKafka: { key: string | null; value: Buffer }[] = [];
  const byAgency = new Map<string, Buffer[]>();
  let skipped = 0;
  for (const r of chosen) {
    let isAvro = false;
    try {
      const sub = deps.codec.decode("Submission", r.originalBytes).value;
      toKafka.push({ key: sub.hashes.length ? partitionKey(sub.hashes) : null, value: r.originalBytes });
      isAvro = true;
    } catch {
      isAvro = false;
    }
    if (isAvro) continue;
    if (r.service === "ingest" && r.agencyId) {
      const list = byAgency.get(r.agencyId) ?? [];
      list.push(r.originalBytes);
      byAgency.set(r.agencyId, list);
    } else {
      skipped++; // nothing to send round: not a submission, and no agency to admit it for
    }
  }
  if (toKafka.length) {
    const producer = createDurableProducer(deps.kafka);
    await producer.connect();
    try {
      for (let i = 0; i < toKafka.length; i += 500)
        await producer.send({ topic: deps.topics.submitted, acks: -1, messages: toKafka.slice(i, i + 500) });
    } finally {
      await producer.disconnect();
    }
  }
  const readmitted = { accepted: 0, duplicates: 0, rejected: 0 };
  for (const [agencyId, originals] of byAgency) {
    const items = originals.flatMap((bytes) => parseSubmissionBatch(bytes));
    const outcomes = await admitBatch(
      deps.intake,
      { agencyId },
      "redrive",
      items.map((it, index) => ({ ...it, index })),
    );
    for (const o of outcomes) {
      if (o.status === "accepted") readmitted.accepted++;
      else if (o.status === "duplicate") readmitted.duplicates++;
      else readmitted.rejected++;
    }
  }
  return { matched: chosen.length, republished: toKafka.length, readmitted, skipped };
}
