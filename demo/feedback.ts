/**
 * The feedback loop in `make demo`: each Kafka partner gets a feedback key registered at the hub;
 * industry-x reports matches (lookup API) and two false positives (its CLI and its lookup API);
 * hotline-uk, whose policy withholds records under review, loses both records until the NCA (the
 * grading authority) decides: one upheld (restored to hotline-uk), one accepted after the NCA
 * regrades it NON_INDECENT (withdrawn from both partners through the normal revision path). An
 * unsigned record forged onto a feedback topic shows the refusal on the dead-letter topic.
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import type { Kafka } from "kafkajs";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { IngestClient } from "../services/force-cli/client.ts";
import { listReviews } from "../services/distribution/review-store.ts";
import { REPO_ROOT } from "../services/shared/config.ts";
import type { Pool } from "../services/shared/postgres.ts";
import type { Hash } from "../services/shared/wire/records.ts";
import { codec, info, names, step, waitUntil, workDir } from "./context.ts";
import { serviceEnv, withoutKafkaCredentials } from "./services.ts";
import { sign } from "./workload.ts";
import { registerFreshKey } from "../test/support/keys.ts";

export const FEEDBACK_PARTNERS = ["hotline-uk", "industry-x"];

export interface FeedbackKey {
  readonly keyId: string;
  readonly file: string;
}

/** What the partner does when it makes a key: the hub operator registers the public half. */
export async function registerFeedbackKeys(hub: Pool): Promise<Record<string, FeedbackKey>> {
  const keys: Record<string, FeedbackKey> = {};
  for (const partnerId of FEEDBACK_PARTNERS) {
    const file = join(workDir, "keys", `${partnerId}-feedback.pem`);
    const { keyId } = await registerFreshKey(hub, "partner", partnerId, { file });
    keys[partnerId] = { keyId, file };
    info(`${partnerId}: feedback key ${keyId}`);
  }
  return keys;
}

/** What the summary prints about the loop, and whether it came out as it must. */
export interface FeedbackOutcome {
  readonly accepted: Record<string, number>;
  readonly reviews: { readonly recordId: string; readonly decision: string; readonly partners: Record<string, string> }[];
  readonly ok: boolean;
}

interface Loop {
  readonly hub: Pool;
  readonly kafka: Kafka;
  readonly ingestUrl: string;
  readonly signers: Record<string, AgencySigner>;
  readonly partnerPools: Record<string, Pool>;
  readonly partnerUrls: Record<string, string>;
  readonly sinkUrls: Record<string, string>;
  readonly feedbackKeys: Record<string, FeedbackKey>;
}

/** md5 values both partners hold now (A or B, confirmed: in both policies). */
async function sharedHashes(pools: Record<string, Pool>, count: number): Promise<string[]> {
  const held = async (partnerId: string) =>
    new Set(
      (
        await (pools[partnerId] as Pool).query<{ value: string }>("SELECT value FROM partner_hashes WHERE alg = 'md5' AND NOT removed")
      ).rows.map((r) => r.value),
    );
  const hotline = await held("hotline-uk");
  return [...(await held("industry-x"))].filter((v) => hotline.has(v)).slice(0, count);
}

async function lookupRef(sinkUrl: string, md5: string): Promise<string> {
  const res = await fetch(`${sinkUrl}/v1/hashes/md5/${md5}`);
  if (!res.ok) throw new Error(`lookup of ${md5} answered ${res.status}`);
  return ((await res.json()) as { recordRef: string }).recordRef;
}

async function postFeedback(sinkUrl: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${sinkUrl}/v1/feedback`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 202) throw new Error(`POST /v1/feedback answered ${res.status}: ${await res.text()}`);
}

function run(command: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${REPO_ROOT}bin/${command}`, args, {
      env: { ...withoutKafkaCredentials(process.env), ...serviceEnv, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`${command} ${args.join(" ")} exited ${code}: ${out}`)),
    );
  });
}

async function holds(pool: Pool, md5: string): Promise<boolean> {
  return (await pool.query("SELECT 1 FROM partner_hashes WHERE alg = 'md5' AND value = $1 AND NOT removed", [md5])).rows.length === 1;
}

async function recordOf(hub: Pool, md5: string): Promise<string> {
  const { rows } = await hub.query<{ record_id: string }>("SELECT record_id FROM distributed_hashes WHERE alg = 'md5' AND value = $1", [
    md5,
  ]);
  if (!rows[0]) throw new Error(`no record claims md5 ${md5}`);
  return rows[0].record_id;
}

export async function feedbackLoop(o: Loop): Promise<FeedbackOutcome> {
  step("Partners answer back: matches, two false positives, and a forged record");
  const industry = o.sinkUrls["industry-x"] as string;
  const [matchedMd5, upheldMd5, acceptedMd5] = await sharedHashes(o.partnerPools, 3);
  if (!matchedMd5 || !upheldMd5 || !acceptedMd5) throw new Error("fewer than three hashes held by both partners");
  const today = new Date().toISOString().slice(0, 10);
  await postFeedback(industry, { recordRef: await lookupRef(industry, matchedMd5), kind: "MATCHED", matchCount: 12, timeBucket: today });
  info(`industry-x: MATCHED x12 on md5 ${matchedMd5.slice(0, 12)}… (POST /v1/feedback)`);
  const cliEnv = {
    PARTNER_ID: "industry-x",
    PARTNER_DATABASE_URL: o.partnerUrls["industry-x"] as string,
    PARTNER_FEEDBACK_KEY_ID: o.feedbackKeys["industry-x"]?.keyId as string,
    PARTNER_FEEDBACK_KEY_FILE: o.feedbackKeys["industry-x"]?.file as string,
  };
  const cliRef = await lookupRef(industry, upheldMd5);
  const sent = await run(
    "hashrelay-sink",
    [
      "feedback",
      "send",
      "--record-ref",
      cliRef,
      "--kind",
      "FALSE_POSITIVE",
      "--reason",
      "BENIGN_CONTENT",
      "--text",
      "synthetic: benign picture",
    ],
    cliEnv,
  );
  info(`industry-x: FALSE_POSITIVE on md5 ${upheldMd5.slice(0, 12)}… (bin/hashrelay-sink feedback send: ${sent})`);
  await postFeedback(industry, { recordRef: await lookupRef(industry, acceptedMd5), kind: "FALSE_POSITIVE", reasonCode: "WRONG_CATEGORY" });
  info(`industry-x: FALSE_POSITIVE on md5 ${acceptedMd5.slice(0, 12)}… (POST /v1/feedback)`);
  // A record nobody signed, written with the operator's own (super user) credentials: refused to the DLQ.
  const producer = o.kafka.producer();
  await producer.connect();
  const forged = {
    feedbackId: randomUUID(),
    partnerId: "hotline-uk",
    recordRef: cliRef,
    kind: "FALSE_POSITIVE" as const,
    matchCount: null,
    timeBucket: null,
    reasonCode: "OTHER",
    freeText: null,
    sentAt: Date.now(),
    keyId: o.feedbackKeys["hotline-uk"]?.keyId as string,
    signature: Buffer.alloc(0),
  };
  await producer.send({
    topic: names.feedback("hotline-uk"),
    acks: -1,
    messages: [{ key: cliRef, value: codec.encode("PartnerFeedback", forged) }],
  });
  await producer.disconnect();
  info("forged: an unsigned FALSE_POSITIVE on hotline-uk's feedback topic");

  const hotline = o.partnerPools["hotline-uk"] as Pool;
  const industryPool = o.partnerPools["industry-x"] as Pool;
  await waitUntil(
    "hotline-uk (withholds under review) loses both reported records",
    async () => !(await holds(hotline, upheldMd5)) && !(await holds(hotline, acceptedMd5)),
  );
  info(`hotline-uk: both records withdrawn while under review; industry-x keeps them: ${await holds(industryPool, upheldMd5)}`);

  step("The grading authority (NCA) decides: one report upheld, one accepted with a regrade");
  const upheldRecord = await recordOf(o.hub, upheldMd5);
  const acceptedRecord = await recordOf(o.hub, acceptedMd5);
  const nca = o.signers["nca"] as AgencySigner;
  const regrade = sign(nca, {
    hashes: [{ alg: "md5", value: acceptedMd5, quality: null } as Hash],
    grade: { uk: "NON_INDECENT", ics: null, vics: null },
    gradingStatus: "confirmed",
  });
  await new IngestClient(o.ingestUrl, nca).submit([regrade]);
  info(`nca: regrades md5 ${acceptedMd5.slice(0, 12)}… NON_INDECENT (a normal signed submission through ingest)`);
  await waitUntil("the regrade reaches distribution", async () => {
    const r = (await listReviews(o.hub, "open")).find((x) => x.recordId === acceptedRecord);
    return r !== undefined && r.currentRevision > r.openedRevision;
  });
  const hubEnv = { DATABASE_URL: serviceEnv["DATABASE_URL"] as string };
  for (const [recordId, decision] of [
    [upheldRecord, "--upheld"],
    [acceptedRecord, "--accepted"],
  ] as const) {
    const out = await run(
      "hashrelay",
      ["review", "decide", "--record", recordId, "--authority", "nca", decision, "--actor", "demo-grader"],
      hubEnv,
    );
    info(`| ${out.split("\n")[0]}`);
  }
  await waitUntil("decisions applied", async () => (await listReviews(o.hub)).every((r) => r.appliedAt !== null));
  await waitUntil("hotline-uk has the upheld record back", () => holds(hotline, upheldMd5));
  await waitUntil("industry-x has the regraded record removed", async () => !(await holds(industryPool, acceptedMd5)));

  const { rows } = await o.hub.query<{ kind: string; n: string }>("SELECT kind, count(*)::text AS n FROM partner_feedback GROUP BY kind");
  const accepted = Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]));
  const state = async (pool: Pool, md5: string) => ((await holds(pool, md5)) ? "held" : "removed");
  const reviews = [
    { recordId: upheldRecord, decision: "upheld", md5: upheldMd5 },
    { recordId: acceptedRecord, decision: "accepted (NCA regraded NON_INDECENT)", md5: acceptedMd5 },
  ];
  const outcome = await Promise.all(
    reviews.map(async (r) => ({
      recordId: r.recordId,
      decision: r.decision,
      partners: { "hotline-uk": await state(hotline, r.md5), "industry-x": await state(industryPool, r.md5) },
    })),
  );
  const ok =
    outcome[0]?.partners["hotline-uk"] === "held" &&
    outcome[0]?.partners["industry-x"] === "held" &&
    outcome[1]?.partners["hotline-uk"] === "removed" &&
    outcome[1]?.partners["industry-x"] === "removed" &&
    accepted["MATCHED"] === 1 &&
    accepted["FALSE_POSITIVE"] === 2;
  return { accepted, reviews: outcome, ok };
}
