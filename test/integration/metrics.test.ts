/**
 * Metrics from every service, each a real process: /healthz, /readyz and /metrics answer; after a
 * workload each stage's lag is back to 0 and the counts agree across services (records applied,
 * feed heads at the hub and at the partner); rejected records count under their reason at the
 * stage that refused them; a partner whose sink is down shows lag at the hub until it catches up;
 * and, where Debian's prometheus is installed, a real Prometheus with the shipped rules scrapes all
 * four, loads every rule, fires the dead-letter ticket and pages nobody.
 */
import { randomUUID } from "node:crypto";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import { IngestClient } from "../../services/force-cli/client.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import { migrate } from "../../services/shared/postgres.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { hotlinePolicy } from "../support/fixtures.ts";
import { samplesOf, scrape, sumOf } from "../support/metrics.ts";
import type { Sample } from "../support/metrics.ts";
import { createHubKey } from "../support/pipeline.ts";
import { startServiceProcess, waitFor } from "../support/processes.ts";
import type { ServiceProcess } from "../support/processes.ts";
import { prometheusAvailable, startTestPrometheus } from "../support/prometheus.ts";
import type { TestPrometheus } from "../support/prometheus.ts";
import { freshDatabase, freshTopics, kafkaAs, stackEnv, hubServiceEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const PARTNER = "hotline-uk";
const DAY = 86_400;
const port = () => 20_000 + Math.floor(Math.random() * 10_000);
const ports = { ingest: port(), dedup: port(), distribution: port(), sink: port() };
const urls = Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, `http://127.0.0.1:${p}`])) as Record<keyof typeof ports, string>;

let hubDb: TestDatabase;
let partnerDb: TestDatabase;
let names: TopicNames;
let kafka: Kafka;
let force: AgencySigner;
let prometheus: TestPrometheus | null = null;
const procs: Record<string, ServiceProcess> = {};
const env: Record<string, Record<string, string>> = {};

function start(name: keyof typeof ports, service: string): void {
  procs[name] = startServiceProcess(service, env[name] as Record<string, string>);
}

async function scrapeAll(): Promise<Record<keyof typeof ports, Sample[]>> {
  const [ingest, dedup, distribution, sink] = await Promise.all([
    scrape(urls.ingest),
    scrape(urls.dedup),
    scrape(urls.distribution),
    scrape(urls.sink),
  ]);
  return { ingest, dedup, distribution, sink };
}

/** Per-partition values of a series, as a map partition -> value. */
function byPartition(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Map<string, number> {
  return new Map(samplesOf(samples, name, labels).map((s) => [s.labels["partition"] as string, s.value]));
}

async function submit(n: number): Promise<void> {
  const res = await new IngestClient(urls.ingest, force).submit(Array.from({ length: n }, () => signedSubmission(force)));
  expect(res.items.every((i) => i.status === "accepted")).toBe(true);
}

function outputOf(): string {
  return Object.entries(procs)
    .map(([name, p]) => `--- ${name}\n${p.output.join("").split("\n").slice(-20).join("\n")}`)
    .join("\n");
}

beforeAll(async () => {
  const stack = stackEnv();
  hubDb = await freshDatabase("metrics");
  partnerDb = await freshDatabase("mpartner");
  let namespace: string;
  ({ names, namespace } = await freshTopics([PARTNER], 3));
  kafka = kafkaAs("test-metrics");
  const hubKey = await createHubKey(hubDb);
  force = await registerTestAgency(hubDb.pool, "force-a");
  // An agency key that runs out in ten days: the agencies' key expiry must show it.
  await registerTestAgency(hubDb.pool, "force-b", { validUntil: new Date(Date.now() + 10 * DAY * 1000) });
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  await registerPartner(hubDb.pool, { partnerId: PARTNER, name: PARTNER });
  await setPolicy(hubDb.pool, hotlinePolicy(PARTNER));
  const common = hubServiceEnv(hubDb.url, namespace, stack);
  env["ingest"] = { ...common, INGEST_PORT: String(ports.ingest) };
  env["dedup"] = { ...common, DEDUP_METRICS_PORT: String(ports.dedup) };
  env["distribution"] = {
    ...common,
    HUB_KEY_ID: hubKey.keyId,
    HUB_SIGNING_KEY_FILE: hubKey.file,
    DISTRIBUTION_PSEUDONYM_SECRET: "metrics-pseudonym-secret-0123456789",
    DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
    DISTRIBUTION_POLICY_REFRESH_MS: "1000",
    DISTRIBUTION_METRICS_PORT: String(ports.distribution),
  };
  env["sink"] = {
    ...common,
    PARTNER_ID: PARTNER,
    PARTNER_DATABASE_URL: partnerDb.url,
    HUB_PUBLIC_KEYS: `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`,
    PARTNER_BOOTSTRAP: "none",
    PARTNER_HTTP_PORT: String(ports.sink),
  };
  start("ingest", "ingest");
  start("dedup", "dedup");
  start("distribution", "distribution");
  start("sink", "partner-sink");
  try {
    for (const [name, url] of Object.entries(urls)) {
      await waitFor(`${name} ready`, async () => (await fetch(`${url}/readyz`)).ok, 120_000, 500);
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${outputOf()}`);
  }
  if (prometheusAvailable) {
    prometheus = await startTestPrometheus(
      Object.entries(ports).map(([name, p]) => ({
        address: `127.0.0.1:${p}`,
        labels: name === "sink" ? { service: "partner-sink", partner: PARTNER } : ({ service: name } as Record<string, string>),
      })),
    );
    // Its first scrapes see the empty pipeline, so that what follows shows as change.
    await waitFor(
      "Prometheus scraped every service",
      async () => {
        const targets = (await prometheus?.targets()) ?? [];
        return targets.length === 4 && targets.every((t) => t.health === "up");
      },
      60_000,
    );
  }
}, 300_000);

afterAll(async () => {
  await prometheus?.stop();
  for (const p of Object.values(procs)) await p.kill("SIGTERM").catch(() => undefined);
  await partnerDb?.drop().catch(() => undefined);
  await hubDb?.drop().catch(() => undefined);
});

describe("service metrics", () => {
  it("every service answers /healthz, /readyz and /metrics in the Prometheus text format", async () => {
    for (const [name, url] of Object.entries(urls)) {
      expect((await fetch(`${url}/healthz`)).status, name).toBe(200);
      expect((await fetch(`${url}/readyz`)).status, name).toBe(200);
      const samples = await scrape(url);
      expect(sumOf(samples, "process_cpu_seconds_total"), name).toBeGreaterThan(0);
      // Rejections are counted from 0 for every reason, and no sample carries a hash or an id.
      expect(sumOf(samples, "hashrelay_records_rejected_total", { reason: "BAD_SIGNATURE" }), name).toBe(0);
      for (const s of samples) for (const v of Object.values(s.labels)) expect(v, `${name} ${s.name}`).not.toMatch(/[0-9a-f]{16,}/);
    }
  });

  it("after a workload every stage's lag is 0, the counts agree, and rejections count under their reason", async () => {
    await submit(30);
    const tampered = { ...submissionToJson(signedSubmission(force)), gradingStatus: "confirmed" };
    const badHash = { ...submissionToJson(signedSubmission(force)), hashes: [{ alg: "md5", value: "not-hex" }] };
    const refused = await new IngestClient(urls.ingest, force).submitRaw(Buffer.from(JSON.stringify([tampered, badHash])));
    expect(refused.items.map((i) => i.reason)).toEqual(["BAD_SIGNATURE", "INVALID_HASH"]);
    // Bytes that are no submission at all, straight onto the topic: dedup refuses them.
    const producer = createDurableProducer(kafka);
    await producer.connect();
    await producer.send({ topic: names.submitted, acks: -1, messages: [{ key: randomUUID(), value: Buffer.from("not avro") }] });
    await producer.disconnect();

    const m = await waitFor(
      "every stage caught up, as its metrics say",
      async () => {
        const all = await scrapeAll();
        const lags = [all.dedup, all.distribution, all.sink].map((s) => sumOf(s, "hashrelay_consumer_lag_messages"));
        const partnerLag = sumOf(all.distribution, "hashrelay_partner_lag_messages", { partner: PARTNER });
        const outboxes = [all.dedup, all.distribution].map((s) => sumOf(s, "hashrelay_outbox_messages"));
        const heads = sumOf(all.distribution, "hashrelay_feed_head_seq", { partner: PARTNER }) ?? 0;
        // Scrape-time gauges are cached for a few seconds: wait for them too, not only the counters.
        const settled =
          sumOf(all.dedup, "hashrelay_records_applied_total") === 30 &&
          sumOf(all.ingest, "hashrelay_dead_letter_messages") === 3 &&
          lags.every((l) => l === 0) &&
          partnerLag === 0 &&
          outboxes.every((n) => n === 0) &&
          heads > 0 &&
          sumOf(all.sink, "hashrelay_sink_head_seq") === heads;
        return settled ? all : undefined;
      },
      120_000,
      500,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${outputOf()}`);
    });

    // ingest: 30 accepted, the tampered one a signature failure, both refusals on the dead-letter topic with dedup's.
    expect(sumOf(m.ingest, "hashrelay_records_applied_total")).toBe(30);
    expect(sumOf(m.ingest, "hashrelay_records_rejected_total", { reason: "BAD_SIGNATURE" })).toBe(1);
    expect(sumOf(m.ingest, "hashrelay_records_rejected_total", { reason: "INVALID_HASH" })).toBe(1);
    expect(sumOf(m.ingest, "hashrelay_signature_failures_total", { reason: "BAD_SIGNATURE" })).toBe(1);
    expect(sumOf(m.ingest, "hashrelay_signature_failures_total")).toBe(1);
    expect(sumOf(m.ingest, "hashrelay_ingest_items_total", { status: "rejected", reason: "INVALID_HASH" })).toBe(1);
    expect(sumOf(m.ingest, "hashrelay_dead_letter_messages")).toBe(3);
    // force-b's key runs out in ten days; force-a's never does.
    const agencyExpiry = sumOf(m.ingest, "hashrelay_key_expiry_seconds", { kind: "agency" }) ?? 0;
    expect(agencyExpiry).toBeGreaterThan(10 * DAY - 600);
    expect(agencyExpiry).toBeLessThanOrEqual(10 * DAY);
    expect(sumOf(m.ingest, "hashrelay_key_owners_without_valid_key", { kind: "agency" })).toBe(0);

    // dedup: the garbage message is rejected under its reason; rounds observed once for all.
    expect(sumOf(m.dedup, "hashrelay_records_rejected_total", { reason: "BAD_MAGIC" })).toBe(1);
    expect(sumOf(m.dedup, "hashrelay_records_rejected_total")).toBe(1);
    expect(sumOf(m.dedup, "hashrelay_consumer_round_messages_sum")).toBeGreaterThanOrEqual(31);
    expect(sumOf(m.dedup, "hashrelay_consumer_round_duration_seconds_count")).toBeGreaterThan(0);
    expect(sumOf(m.dedup, "hashrelay_outbox_relayed_messages_total", { table: "outbox" })).toBeGreaterThan(30);
    expect(byPartition(m.dedup, "hashrelay_consumer_lag_messages", { topic: names.submitted }).size).toBe(3);

    // distribution: every record issued to the partner moved its feed heads; the hub key never expires.
    const heads = byPartition(m.distribution, "hashrelay_feed_head_seq", { partner: PARTNER });
    const issued = sumOf(m.distribution, "hashrelay_feed_records_issued_total", { partner: PARTNER, op: "UPSERT" });
    expect(issued).toBe(60); // md5 and sha1 of each of the 30
    expect([...heads.values()].reduce((a, b) => a + b, 0)).toBe(issued);
    expect(sumOf(m.distribution, "hashrelay_records_applied_total")).toBe(30);
    expect(sumOf(m.distribution, "hashrelay_partner_feed_lost", { partner: PARTNER })).toBe(0);
    expect(sumOf(m.distribution, "hashrelay_key_expiry_seconds", { kind: "hub" })).toBe(Number.POSITIVE_INFINITY);
    expect(sumOf(m.distribution, "hashrelay_metrics_source_errors_total")).toBe(0);

    // The partner's sink: the same heads, nothing refused, nothing halted.
    expect(byPartition(m.sink, "hashrelay_sink_head_seq")).toEqual(heads);
    expect(sumOf(m.sink, "hashrelay_records_applied_total")).toBe(60);
    expect(sumOf(m.sink, "hashrelay_records_rejected_total")).toBe(0);
    expect(sumOf(m.sink, "hashrelay_sink_halted_partitions")).toBe(0);
    expect(sumOf(m.sink, "hashrelay_consumer_held_partitions")).toBe(0);
    expect(sumOf(m.sink, "hashrelay_key_expiry_seconds", { kind: "hub" })).toBe(Number.POSITIVE_INFINITY);
  }, 180_000);

  it("shows a partner's lag at the hub while its sink is down, back to 0 once it caught up", async () => {
    await procs["sink"]?.kill("SIGTERM");
    await submit(10);
    const behind = await waitFor(
      "the hub sees the partner behind",
      async () => {
        const lag = sumOf(await scrape(urls.distribution), "hashrelay_partner_lag_messages", { partner: PARTNER }) ?? 0;
        return lag >= 20 ? lag : undefined;
      },
      60_000,
      500,
    );
    expect(behind).toBe(20);
    start("sink", "partner-sink");
    await waitFor(
      "the partner caught up",
      async () => {
        const [distribution, sink] = await Promise.all([scrape(urls.distribution), scrape(urls.sink)]);
        return (
          sumOf(distribution, "hashrelay_partner_lag_messages", { partner: PARTNER }) === 0 &&
          sumOf(sink, "hashrelay_consumer_lag_messages") === 0 &&
          sumOf(sink, "hashrelay_sink_head_seq") === sumOf(distribution, "hashrelay_feed_head_seq", { partner: PARTNER })
        );
      },
      120_000,
      500,
    );
  }, 240_000);

  it.skipIf(!prometheusAvailable && !process.env["HASHRELAY_REQUIRE_PROMTOOL"])(
    "a real Prometheus scrapes all four, loads every rule, fires the dead-letter ticket and pages nobody",
    async () => {
      const p = prometheus as TestPrometheus;
      await waitFor("every target up", async () => (await p.targets()).every((t) => t.health === "up"), 60_000);
      expect((await p.targets()).map((t) => t.labels["service"]).sort()).toEqual(["dedup", "distribution", "ingest", "partner-sink"]);
      const rules = await p.rules();
      expect(rules.length).toBeGreaterThan(10);
      for (const r of rules) expect([r.name, r.health, r.lastError ?? ""]).toEqual([r.name, "ok", ""]);
      const alerts = await waitFor(
        "the dead-letter ticket",
        async () => {
          const all = await p.alerts();
          return all.some((a) => a.labels["alertname"] === "HashrelayDeadLetterGrowing" && a.state === "firing") ? all : undefined;
        },
        60_000,
        1_000,
      ).catch(async (err: unknown) => {
        const dlq = await p.query("hashrelay_dead_letter_messages[5m]");
        throw new Error(`${(err as Error).message}: alerts ${JSON.stringify(await p.alerts())}; DLQ ${JSON.stringify(dlq)}`);
      });
      // The sink was down for a few seconds: a target is paged for after two minutes, so at most pending.
      const paging = alerts.filter((a) => a.labels["severity"] === "page" && a.state === "firing");
      expect(paging).toEqual([]);
    },
    120_000,
  );
});
