/**
 * The steady stream of the chaos run, sent the way a force's client would: batches over HTTP every
 * second, retried until ingest answers (it may be killed, or Kafka or PostgreSQL may be down), S3
 * imports now and then (uploaded, imported, polled until done; a failed import is started again),
 * policy changes, bad records over HTTP and in imports, and undecodable bytes straight onto the
 * submitted topic. The ledger records what the hub accepted, what it rejected and what is
 * uncertain (given up on: it may or may not have been published), for the reconciliation.
 */
import { randomUUID } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import type { Producer } from "kafkajs";
import { IngestClient } from "../../services/force-cli/client.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import type { Pool } from "../../services/shared/postgres.ts";
import type { ItemOutcome } from "../../services/shared/wire/ingest-api.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import type { BadRecord, Planned, SubmissionKind, Workload } from "./workload.ts";

export interface Ledger {
  /** Submission ids the hub accepted (or answered as duplicates of an accepted one). */
  readonly accepted: Set<string>;
  /** Ids sent but never answered before the run gave up: they may or may not be in. */
  readonly uncertain: Set<string>;
  /** Good submissions the hub rejected: none is expected. */
  readonly wronglyRejected: { submissionId: string; reason: string }[];
  /** Tokens of the bad records sent, each of which must be on the DLQ. */
  readonly badTokens: Map<string, string>;
  readonly counts: Record<SubmissionKind | "http" | "imported" | "imports" | "importRestarts" | "policyChanges" | "retries", number>;
  /** When each policy change was stored (epoch ms): each reissues part of a partner's feed at once. */
  readonly policyChangedAt: number[];
}

export function emptyLedger(): Ledger {
  return {
    accepted: new Set(),
    uncertain: new Set(),
    wronglyRejected: [],
    badTokens: new Map(),
    policyChangedAt: [],
    counts: {
      new: 0,
      confirm: 0,
      conflict: 0,
      regrade: 0,
      merge: 0,
      retract: 0,
      http: 0,
      imported: 0,
      imports: 0,
      importRestarts: 0,
      policyChanges: 0,
      retries: 0,
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TrafficOptions {
  readonly ingestUrl: string;
  readonly signers: Record<string, AgencySigner>;
  readonly workload: Workload;
  readonly ledger: Ledger;
  readonly hub: Pool;
  readonly s3: S3Client;
  readonly bucket: string;
  readonly namespace: string;
  /** Admin producer for undecodable bytes on the submitted topic. */
  readonly producer: Producer;
  readonly submittedTopic: string;
  readonly policies: Omit<PartnerPolicy, "version">[];
  readonly perSecond: number;
  /** How long a send is retried before it is given up as uncertain. */
  readonly giveUpMs: number;
  readonly log: (line: string) => void;
}

/** Runs until `stopped()` says so; resolves once every send and import in hand has finished. */
export async function runTraffic(o: TrafficOptions, stopped: () => boolean): Promise<void> {
  const background: Promise<void>[] = [];
  let tick = 0;
  const t0 = Date.now();
  while (!stopped()) {
    const started = Date.now();
    tick++;
    await sendBatch(o, o.workload.next(o.perSecond));
    if (tick % 15 === 0) await sendBad(o, o.workload.bad());
    if (tick % 20 === 10) await publishUndecodable(o);
    if (tick % 45 === 5) background.push(importFile(o, tick));
    if (tick % 70 === 35) background.push(changePolicy(o, tick));
    if (tick % 30 === 0) {
      const c = o.ledger.counts;
      o.log(
        `  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${o.ledger.accepted.size} accepted, ${o.ledger.uncertain.size} uncertain, ${c.http} sent over HTTP, ${c.imported} in ${c.imports} imports, ${c.retries} retries`,
      );
    }
    await sleep(Math.max(0, 1_000 - (Date.now() - started)));
  }
  await Promise.all(background);
}

/** POSTs until ingest answers: a force retries on a refused connection or a 503. */
async function post(o: TrafficOptions, agencyId: string, body: Buffer): Promise<ItemOutcome[] | null> {
  const client = new IngestClient(o.ingestUrl, o.signers[agencyId] as AgencySigner);
  const deadline = Date.now() + o.giveUpMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.submitRaw(body)).items;
    } catch (err) {
      const status = (err as { status?: number }).status;
      // A refusal (4xx) is an answer; anything else is the hub not able to answer now.
      if (status !== undefined && status < 500 && status !== 429) throw err;
      if (Date.now() > deadline) return null;
      if (attempt > 0) o.ledger.counts.retries++;
      await sleep(Math.min(2_000, 200 * (attempt + 1)));
    }
  }
}

async function sendBatch(o: TrafficOptions, planned: Planned[]): Promise<void> {
  const byAgency = new Map<string, Planned[]>();
  for (const p of planned) byAgency.set(p.sub.agencyId, [...(byAgency.get(p.sub.agencyId) ?? []), p]);
  for (const [agencyId, items] of byAgency) {
    const body = Buffer.from(JSON.stringify(items.map((p) => submissionToJson(p.sub))));
    const outcomes = await post(o, agencyId, body);
    o.ledger.counts.http += items.length;
    items.forEach((p, i) => {
      o.ledger.counts[p.kind]++;
      const outcome = outcomes?.[i];
      if (!outcome) o.ledger.uncertain.add(p.sub.submissionId);
      else if (outcome.status === "rejected")
        o.ledger.wronglyRejected.push({ submissionId: p.sub.submissionId, reason: outcome.reason ?? "?" });
      else {
        o.ledger.accepted.add(p.sub.submissionId);
        p.onAccepted();
      }
    });
  }
}

async function sendBad(o: TrafficOptions, bad: BadRecord): Promise<void> {
  o.ledger.badTokens.set(bad.token, `http ${bad.kind}`);
  try {
    await post(o, Object.keys(o.signers)[0] as string, bad.body);
  } catch {
    /* a 400 with a receipt or without: the rejection is looked for on the DLQ either way */
  }
}

/** Bytes that are no single-object encoded record, straight onto the topic: dedup dead-letters them. */
async function publishUndecodable(o: TrafficOptions): Promise<void> {
  const token = randomUUID();
  o.ledger.badTokens.set(token, "kafka undecodable");
  for (let attempt = 0; ; attempt++) {
    try {
      await o.producer.send({
        topic: o.submittedTopic,
        acks: -1,
        messages: [{ key: token, value: Buffer.from(`chaos-undecodable ${token}`) }],
      });
      return;
    } catch (err) {
      if (attempt > 60) throw err;
      await sleep(1_000);
    }
  }
}

/**
 * A force's S3 import: new images and one bad line, uploaded, imported and polled until done. A
 * failed or stuck import is started again, as a force would: lines already in come back as duplicates.
 */
async function importFile(o: TrafficOptions, tick: number): Promise<void> {
  const agencyId = Object.keys(o.signers)[tick % 3] as string;
  const planned = o.workload.fresh(150, agencyId);
  const token = randomUUID();
  o.ledger.badTokens.set(token, "import bad line");
  const lines = planned.map((p) => JSON.stringify(submissionToJson(p.sub)));
  lines.splice(70, 0, `{"chaos":"${token}" not json`);
  const key = `imports/${agencyId}/${o.namespace}-${tick}.jsonl`;
  await retry(() => o.s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: key, Body: `${lines.join("\n")}\n` })));
  const client = new IngestClient(o.ingestUrl, o.signers[agencyId] as AgencySigner);
  o.ledger.counts.imports++;
  o.ledger.counts.imported += planned.length;
  const deadline = Date.now() + o.giveUpMs * 3;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (attempt > 0) o.ledger.counts.importRestarts++;
    const job = await retry(() => client.startImport(key), o.giveUpMs).catch(() => null);
    if (!job) continue;
    const attemptEnds = Date.now() + o.giveUpMs;
    let status = job.status;
    let rejected = 0;
    while (status !== "done" && status !== "failed" && Date.now() < attemptEnds) {
      await sleep(1_000);
      const now = await client.getImport(job.importId).catch(() => null);
      if (now) ({ status } = now);
      if (now) rejected = now.receipt.rejected;
    }
    if (status === "done") {
      for (const p of planned) {
        o.ledger.accepted.add(p.sub.submissionId);
        p.onAccepted();
      }
      if (rejected !== 1) o.log(`  ! import ${key}: ${rejected} lines rejected, expected 1`);
      return;
    }
    o.log(`  import ${key} ${status} (attempt ${attempt + 1}); starting it again`);
  }
  for (const p of planned) o.ledger.uncertain.add(p.sub.submissionId);
}

/** A policy change mid-stream: the partner's feed is reconciled to it (REMOVEs and UPSERTs). */
async function changePolicy(o: TrafficOptions, tick: number): Promise<void> {
  const i = Math.floor(tick / 70) % o.policies.length;
  const current = o.policies[i] as Omit<PartnerPolicy, "version">;
  const next: Omit<PartnerPolicy, "version"> =
    current.scheme === "ics"
      ? { ...current, minGradingStatus: current.minGradingStatus === "confirmed" ? "indicative" : "confirmed" }
      : { ...current, categories: current.categories.length === 3 ? ["A", "B"] : ["A", "B", "C"] };
  await retry(() => setPolicy(o.hub, next), o.giveUpMs);
  o.policies[i] = next;
  o.ledger.counts.policyChanges++;
  o.ledger.policyChangedAt.push(Date.now());
  o.log(`  policy of ${next.partnerId} changed: ${next.categories.join("/")} >= ${next.minGradingStatus}`);
}

async function retry<T>(f: () => Promise<T>, forMs = 300_000): Promise<T> {
  const deadline = Date.now() + forMs;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(1_000);
    }
  }
}
