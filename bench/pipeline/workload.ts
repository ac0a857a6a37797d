/**
 * The pipeline benchmark's workload: signed synthetic submissions (random digests) with the rows
 * each partner is entitled to, and the open-loop steady load that offers them by the clock. The
 * schedule decides what is due, never how earlier sends went.
 */
import { randomUUID } from "node:crypto";
import type { Message } from "kafkajs";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { partitionKey } from "../../services/ingest/partition-key.ts";
import type { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { Grade, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../../test/support/agencies.ts";
import { randomHashes } from "../../test/support/fixtures.ts";
import { sleep } from "./util.ts";

export const GRADES: Grade[] = [
  { uk: "A", ics: "A1", vics: null },
  { uk: "B", ics: "B1", vics: null },
  { uk: "A", ics: "A2", vics: null },
  { uk: "C", ics: null, vics: null }, // not for the ICS partner (category C is outside its policy)
];

export interface Item {
  readonly sub: Submission;
  readonly md5: string;
  readonly key: string;
  /** Rows this submission gives each partner. */
  readonly hotlineRows: number;
  readonly industryRows: number;
}

/** n signed submissions, one at a time: the import mode streams a million without holding them. */
export function* itemStream(signer: AgencySigner, n: number, tag: string): Generator<Item> {
  for (let i = 0; i < n; i++) {
    const grade = GRADES[i % GRADES.length] as Grade;
    const hashes = randomHashes(); // md5, sha1, pdq: random digests
    const sub = signedSubmission(signer, { submissionId: `${tag}-${randomUUID()}`, hashes, grade });
    const md5 = hashes.find((h) => h.alg === "md5")?.value as string;
    yield { sub, md5, key: partitionKey(hashes), hotlineRows: 2, industryRows: grade.uk === "C" ? 0 : 1 };
  }
}

export function makeItems(signer: AgencySigner, n: number, tag: string): Item[] {
  return [...itemStream(signer, n, tag)];
}

export const sum = (items: readonly Item[], f: (i: Item) => number): number => items.reduce((n, i) => n + f(i), 0);

export interface SteadyResult {
  offered: number;
  seconds: number;
  sends: number;
  maxTickLagMs: number;
  deferredTicks: number;
}

/**
 * Calls send(from, to) once per tick with the items due by the end of that tick (by the schedule,
 * not by how earlier sends went), without waiting for earlier sends unless maxInFlight are pending.
 */
export async function steadyLoad(o: {
  total: number;
  rate: number;
  tickMs: number;
  maxInFlight: number;
  send: (from: number, to: number) => Promise<void>;
}): Promise<SteadyResult> {
  const inFlight = new Set<Promise<void>>();
  const t0 = Date.now();
  let sent = 0;
  let tick = 0;
  let sends = 0;
  let deferred = 0;
  let maxLag = 0;
  while (sent < o.total) {
    const target = t0 + tick * o.tickMs;
    const wait = target - Date.now();
    if (wait > 0) await sleep(wait);
    maxLag = Math.max(maxLag, Date.now() - target);
    tick++;
    const due = Math.min(o.total, Math.round((tick * o.tickMs * o.rate) / 1000));
    if (due <= sent) continue;
    if (inFlight.size >= o.maxInFlight) {
      deferred++;
      continue;
    }
    const p: Promise<void> = o.send(sent, due).finally(() => inFlight.delete(p));
    inFlight.add(p);
    sent = due;
    sends++;
  }
  const seconds = (Date.now() - t0) / 1000;
  await Promise.all(inFlight);
  return { offered: o.total, seconds, sends, maxTickLagMs: maxLag, deferredTicks: deferred };
}

/** Records per producer send, in the raw baseline and the pipeline's bulk publish alike. */
export const BATCH = 500;

/** The Kafka messages ingest would publish for these items: key and single-object encoded Submission. */
export function encodeItems(codec: AvroCodec, items: readonly Item[]): Message[] {
  return items.map((i) => ({ key: i.key, value: codec.encode("Submission", i.sub) }));
}
