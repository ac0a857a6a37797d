/**
 * The partner's sink CLI (bin/hashrelay-sink) on the real stack: a partition halts because the
 * hub's chain really has a gap (the hub "loses" two records: its chain head is moved on as if
 * their outbox rows had vanished), `status` shows it and exits non-zero, `resume` is refused
 * without --accept-gap and accepted with it, and the running sink (not restarted) applies the
 * halting record and everything after it, while a record signed with a wrong key at the resumed
 * chain position is still refused. Then a broken chain: refused with --accept-gap, accepted with
 * --accept-chain-break.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import { loadPolicies } from "../../services/distribution/policy-store.ts";
import type { RunningSink } from "../../services/partner-sink/main.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { feedPartitionOf } from "../../services/shared/wire/feed-chain.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { CanonicalRecord, FeedRecord } from "../../services/shared/wire/records.ts";
import { generateSigningKeyPair, privateKeyFromPem, signRecord } from "../../services/shared/wire/signing.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const PARTNER = "hotline-uk";
const PARTITIONS = 2;
const HALTED = 0; // the partition this test halts; partition 1 keeps going
const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
let sinkAtStart: RunningSink;

beforeAll(async () => {
  kafka = kafkaAs("test-sink-cli");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({
    agencies: [{ id: "force-a" }],
    policies: [
      {
        partnerId: PARTNER,
        categories: ["A", "B", "C"],
        minGradingStatus: "indicative",
        algorithms: ["md5"],
        scheme: "uk",
        extraFields: [],
        delivery: "kafka",
        feedPartitions: PARTITIONS,
      },
    ],
  });
  sinkAtStart = sink().sink;
});

afterAll(async () => {
  await p?.stop();
  await producer?.disconnect();
});

function sink() {
  const s = p.sinks[PARTNER];
  if (!s) throw new Error("no sink");
  return s;
}

/** Runs bin/hashrelay-sink against the partner's database; never throws on a non-zero exit. */
function sinkCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      `${REPO_ROOT}bin/hashrelay-sink`,
      args,
      { env: { ...process.env, PARTNER_DATABASE_URL: sink().db.url }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Submits `n` graded records, each with one md5 that lands on the given feed partition; returns the md5s. */
async function submitOn(partition: number, n: number): Promise<string[]> {
  const signer = p.agencies["force-a"];
  if (!signer) throw new Error("no agency");
  const values: string[] = [];
  while (values.length < n) {
    const v = randomHex(16);
    if (feedPartitionOf("md5", v, PARTITIONS) === partition) values.push(v);
  }
  const subs = values.map((value) =>
    signedSubmission(signer, { hashes: [{ alg: "md5", value, quality: null }], grade: { uk: "A", ics: "A1", vics: null } }),
  );
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `md5:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
  return values;
}

/** Waits until the partner's database holds exactly what its policy implies. */
async function reconciled(): Promise<void> {
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, [PARTNER]), 60_000, 300);
  const [policy] = await loadPolicies(p.hubDb.pool);
  if (!policy) throw new Error("no policy");
  const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records");
  const records: CanonicalRecord[] = rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
  const report = reconcile(expectedHoldings(policy, records), await partnerHoldings(sink().db.pool));
  expect({ ...report, missing: report.missing.length, unexpected: report.unexpected.length }).toMatchObject({
    ok: true,
    missing: 0,
    unexpected: 0,
  });
}

async function hubHead(partition: number): Promise<{ seq: number; digest: Buffer }> {
  const { rows } = await p.hubDb.pool.query<{ last_seq: number; last_digest: Buffer }>(
    "SELECT last_seq, last_digest FROM feed_partitions WHERE partner_id = $1 AND partition = $2",
    [PARTNER, partition],
  );
  if (!rows[0]) throw new Error("no hub head");
  return { seq: Number(rows[0].last_seq), digest: rows[0].last_digest };
}

async function partnerState(partition: number) {
  const { rows } = await sink().db.pool.query<{ last_seq: number; halted_reason: string | null }>(
    "SELECT last_seq, halted_reason FROM feed_state WHERE partition = $1",
    [partition],
  );
  return rows[0];
}

async function held(values: string[]): Promise<number> {
  const { rows } = await sink().db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM partner_hashes WHERE alg = 'md5' AND value = ANY($1) AND NOT removed",
    [values],
  );
  return rows[0]?.n ?? 0;
}

describe("bin/hashrelay-sink", () => {
  it("status on a healthy sink: every partition applying, exit 0, JSON for monitoring", async () => {
    await submitOn(0, 3);
    await submitOn(1, 3);
    await reconciled();
    const text = await sinkCli("status");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^0\s+\d+\s+[0-9a-f]{16}\s+0\s+0\s+applying$/m);
    expect(text.stdout).toMatch(/^1\s+\d+\s+[0-9a-f]{16}\s+0\s+0\s+applying$/m);
    expect(text.stdout).toContain("rows: 6 live, 0 tombstones; alerts: 0");
    const json = await sinkCli("status", "--json");
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout) as {
      halted: number[];
      partitions: { partition: number; lastSeq: number; halted: unknown }[];
      totals: { live: number };
    };
    expect(status.halted).toEqual([]);
    expect(status.partitions.map((x) => x.partition)).toEqual([0, 1]);
    expect(status.totals.live).toBe(6);
    expect(status.partitions[0]?.lastSeq).toBe((await hubHead(0)).seq);
  });

  it("a SEQ_GAP halts the partition; status shows it; resume is refused without --accept-gap and the running sink goes on with it", async () => {
    const before = await hubHead(HALTED);
    expect((await partnerState(HALTED))?.last_seq).toBe(before.seq);
    // The hub loses seqs N+1 and N+2 (as if their outbox rows had vanished): its next record is N+3.
    const lostFrom = before.seq + 1;
    const lostTo = before.seq + 2;
    await p.hubDb.pool.query("UPDATE feed_partitions SET last_seq = $3, last_digest = $4 WHERE partner_id = $1 AND partition = $2", [
      PARTNER,
      HALTED,
      lostTo,
      randomBytes(32),
    ]);
    const afterGap = await submitOn(HALTED, 2);
    const elsewhere = await submitOn(1, 1);

    await waitFor("partition halted", async () => (await partnerState(HALTED))?.halted_reason?.startsWith("SEQ_GAP") ?? false, 60_000, 200);
    await waitFor("the other partition goes on", async () => (await held(elsewhere)) === 1, 60_000, 200);
    expect(await held(afterGap)).toBe(0);
    // While halted, a record signed with a key the partner does not trust, at the very chain position the resume will open.
    await waitFor(
      "feed outbox drained",
      async () => Number((await p.hubDb.pool.query("SELECT count(*)::int AS n FROM feed_outbox")).rows[0]?.n) === 0,
    );
    const head = await hubHead(HALTED);
    expect(head.seq).toBe(lostTo + 2);
    const forgedValue = randomHex(16);
    const forged = signRecord(
      "FeedRecord",
      codec.schema("FeedRecord").type,
      {
        partnerId: PARTNER,
        partition: HALTED,
        seq: head.seq + 1,
        prevDigest: head.digest,
        op: "UPSERT",
        alg: "md5",
        value: forgedValue,
        category: "A",
        contentType: "image",
        revision: 1,
        recordRef: randomHex(16),
        extra: {},
        issuedAt: Date.now(),
        keyId: p.hubKey.keyId,
      } satisfies Omit<FeedRecord, "signature">,
      privateKeyFromPem(generateSigningKeyPair().privateKeyPem),
    );
    await producer.send({
      topic: p.names.feed(PARTNER),
      acks: -1,
      messages: [{ partition: HALTED, key: `md5:${forgedValue}`, value: codec.encode("FeedRecord", forged) }],
    });

    const status = await sinkCli("status");
    expect(status.code, status.stderr).toBe(2);
    expect(status.stdout).toMatch(
      new RegExp(
        `^${HALTED}\\s+${before.seq}\\s+[0-9a-f]{16}\\s+0\\s+1\\s+HALTED at seq ${lostTo + 1} \\(Kafka offset \\d+\\) since \\S+: SEQ_GAP: expected seq ${lostFrom}, got ${lostTo + 1}$`,
        "m",
      ),
    );
    expect(status.stdout).toMatch(/^1\s+\d+\s+[0-9a-f]{16}\s+0\s+0\s+applying$/m);
    expect(status.stdout).toContain(`partition ${HALTED}: seq ${lostFrom}..${lostTo} missing (2 records)`);
    expect(status.stdout).toContain(`hashrelay-sink resume --partition ${HALTED} --reason "<why>" --accept-gap`);
    const json = JSON.parse((await sinkCli("status", "--json")).stdout) as {
      halted: number[];
      partitions: { halted: { code: string; seq: number; missing: unknown } | null }[];
    };
    expect(json.halted).toEqual([HALTED]);
    expect(json.partitions[HALTED]?.halted).toMatchObject({
      code: "SEQ_GAP",
      seq: lostTo + 1,
      missing: { from: lostFrom, to: lostTo, count: 2 },
    });

    const refused = await sinkCli("resume", "--partition", String(HALTED), "--reason", "hub says the records are lost");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("resume refused");
    expect(refused.stderr).toContain(`seqs ${lostFrom}..${lostTo} (2 records) never arrived`);
    expect(refused.stderr).toContain("--accept-gap");
    expect((await partnerState(HALTED))?.halted_reason).toMatch(/^SEQ_GAP/);
    const notHalted = await sinkCli("resume", "--partition", "1", "--reason", "x", "--accept-gap");
    expect(notHalted.code).toBe(1);
    expect(notHalted.stderr).toContain("partition 1 is not halted");

    const resumed = await sinkCli(
      "resume",
      "--partition",
      String(HALTED),
      "--reason",
      "hub confirmed the two records are lost",
      "--accept-gap",
      "--operator",
      "test-operator",
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`partition ${HALTED}: resumed at seq ${lostTo + 1}`);
    expect(resumed.stdout).toContain(`skipped seqs ${lostFrom}..${lostTo} (2 records)`);

    // The same sink process, not restarted, picks the partition up again and applies the halting record and what follows.
    await reconciled();
    expect(sink().sink).toBe(sinkAtStart);
    expect(await held(afterGap)).toBe(2);
    expect(await held([forgedValue])).toBe(0);
    expect(await partnerState(HALTED)).toEqual({ last_seq: head.seq, halted_reason: null });
    // And the records after that, as usual.
    const later = await submitOn(HALTED, 2);
    await reconciled();
    expect(await held(later)).toBe(2);
    expect((await partnerState(HALTED))?.last_seq).toBe(head.seq + 2);

    const alerts = await sinkCli("alerts", "--partition", String(HALTED));
    expect(alerts.code).toBe(0);
    const lines = alerts.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^time\s+partition\s+seq\s+offset\s+reason\s+detail$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[4])).toEqual(["SEQ_GAP", "RESUMED", "BAD_SIGNATURE"]);
    expect(lines[2]).toContain(
      `resumed by test-operator: hub confirmed the two records are lost; accepted SEQ_GAP: skipped seqs ${lostFrom}..${lostTo} (2 records)`,
    );
    const last = JSON.parse((await sinkCli("alerts", "--json", "--limit", "1")).stdout) as { reason: string; seq: number }[];
    expect(last).toEqual([expect.objectContaining({ reason: "BAD_SIGNATURE", seq: head.seq + 1 })]);
    const none = await sinkCli("alerts", "--since", new Date(Date.now() + 60_000).toISOString());
    expect(none.stdout.trim()).toBe("no alerts");

    const healthy = await sinkCli("status");
    expect(healthy.code, healthy.stdout).toBe(0);
  });

  it("a CHAIN_BROKEN halt: --accept-gap is refused with advice to re-bootstrap; --accept-chain-break resumes", async () => {
    // The hub's record at the head differs from the one this partner applied (e.g. a hub restored from a backup).
    await p.hubDb.pool.query("UPDATE feed_partitions SET last_digest = $3 WHERE partner_id = $1 AND partition = $2", [
      PARTNER,
      HALTED,
      randomBytes(32),
    ]);
    const afterBreak = await submitOn(HALTED, 1);
    await waitFor(
      "partition halted",
      async () => (await partnerState(HALTED))?.halted_reason?.startsWith("CHAIN_BROKEN") ?? false,
      60_000,
      200,
    );
    const status = await sinkCli("status");
    expect(status.code).toBe(2);
    expect(status.stdout).toContain("CHAIN_BROKEN");
    expect(status.stdout).toContain("--accept-chain-break");

    const refused = await sinkCli("resume", "--partition", String(HALTED), "--reason", "try", "--accept-gap");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("halted on CHAIN_BROKEN");
    expect(refused.stderr).toContain("re-bootstrap");
    expect(refused.stderr).toContain("--accept-chain-break");
    expect(await held(afterBreak)).toBe(0);

    const resumed = await sinkCli(
      "resume",
      "--partition",
      String(HALTED),
      "--reason",
      "hub restored from backup; re-bootstrap planned",
      "--accept-chain-break",
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    await reconciled();
    expect(await held(afterBreak)).toBe(1);
    expect((await sinkCli("status")).code).toBe(0);
  });

  it("refuses a database that is not a sink's, and a missing PARTNER_DATABASE_URL, clearly", async () => {
    const wrong = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        `${REPO_ROOT}bin/hashrelay-sink`,
        ["status"],
        { env: { ...process.env, PARTNER_DATABASE_URL: p.hubDb.url } },
        (err, _o, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stderr }),
      ),
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("[NOT_FOUND] no partner-sink tables");
    const env = { ...process.env };
    delete env["PARTNER_DATABASE_URL"];
    const unset = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(`${REPO_ROOT}bin/hashrelay-sink`, ["status"], { env }, (err, _o, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stderr }),
      ),
    );
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain("[CONFIG_INVALID]");
    expect(unset.stderr).toContain("PARTNER_DATABASE_URL: not set");
  });
});
