/**
 * The operator console in a real browser (Debian's chromium through puppeteer-core) against the
 * running stack, every service a process of its own: a signed workload goes through ingest,
 * dedup, distribution and a partner's sink; then the console refuses a browser without
 * credentials, shows figures equal to what the hub database and the broker hold, finds a hash's
 * partners and disclosures, hides law-enforcement-only fields from an operator and shows them to
 * the law-enforcement role, and re-drives a DLQ reason as the signed-in operator. It writes
 * screenshots to bench-results/ (not committed).
 */
import { mkdirSync } from "node:fs";
import { randomUUID } from "node:crypto";
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleUserEntry } from "../../services/admin/console/auth.ts";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import { IngestClient } from "../../services/force-cli/client.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { expandAuditEvent } from "../../services/shared/audit.ts";
import { createDurableProducer, readTopicToEnd } from "../../services/shared/kafka.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { readTopicDepth } from "../../services/shared/pipeline-state.ts";
import { migrate } from "../../services/shared/postgres.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { browserAvailable, browserRequired, launchBrowser } from "../support/browser.ts";
import { hotlinePolicy } from "../support/fixtures.ts";
import { createHubKey } from "../support/pipeline.ts";
import { startServiceProcess, waitFor } from "../support/processes.ts";
import type { ServiceProcess } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, stackEnv, hubServiceEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const PARTNER = "hotline-uk";
const SUBMISSIONS = 12;
const port = () => 20_000 + Math.floor(Math.random() * 10_000);
const ports = { ingest: port(), dedup: port(), distribution: port(), sink: port(), console: port() };
const url = (name: keyof typeof ports) => `http://127.0.0.1:${ports[name]}`;
const PASSWORD = "console-test-password-0123";
const SHOTS = `${REPO_ROOT}bench-results`;

let hubDb: TestDatabase;
let partnerDb: TestDatabase;
let names: TopicNames;
let force: AgencySigner;
let browser: Browser;
const procs: Record<string, ServiceProcess> = {};

function outputOf(): string {
  return Object.entries(procs)
    .map(([name, p]) => `--- ${name}\n${p.output.join("").split("\n").slice(-20).join("\n")}`)
    .join("\n");
}

/**
 * A page signed in as `user` (Basic credentials, as a browser's prompt would send them), in a
 * browser context of its own: chromium caches Basic credentials per origin within a context.
 */
async function pageAs(user: string | null, password = PASSWORD): Promise<Page> {
  const page = await (await browser.createBrowserContext()).newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  if (user) await page.authenticate({ username: user, password });
  return page;
}

/** The figures a page shows, by their data-figure names. */
async function figures(page: Page): Promise<Record<string, string>> {
  return page.$$eval("[data-figure]", (els) =>
    Object.fromEntries(els.map((e) => [e.getAttribute("data-figure") ?? "", e.textContent ?? ""])),
  );
}

describe.skipIf(!browserAvailable && !browserRequired)("operator console in a browser", () => {
  beforeAll(async () => {
    // First, so that a missing browser fails at once rather than after the services started.
    browser = await launchBrowser();
    mkdirSync(SHOTS, { recursive: true });
    const stack = stackEnv();
    hubDb = await freshDatabase("console");
    partnerDb = await freshDatabase("cpartner");
    let namespace: string;
    ({ names, namespace } = await freshTopics([PARTNER], 3));
    const hubKey = await createHubKey(hubDb);
    force = await registerTestAgency(hubDb.pool, "force-a");
    await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
    await registerPartner(hubDb.pool, { partnerId: PARTNER, name: "UK hotline <synthetic>" });
    await setPolicy(hubDb.pool, hotlinePolicy(PARTNER));
    const common = hubServiceEnv(hubDb.url, namespace, stack);
    procs["ingest"] = startServiceProcess("ingest", { ...common, INGEST_PORT: String(ports.ingest) });
    procs["dedup"] = startServiceProcess("dedup", { ...common, DEDUP_METRICS_PORT: String(ports.dedup) });
    procs["distribution"] = startServiceProcess("distribution", {
      ...common,
      HUB_KEY_ID: hubKey.keyId,
      HUB_SIGNING_KEY_FILE: hubKey.file,
      DISTRIBUTION_PSEUDONYM_SECRET: "console-pseudonym-secret-0123456789",
      DISTRIBUTION_EXPORT_INTERVAL_MS: "0",
      DISTRIBUTION_POLICY_REFRESH_MS: "1000",
      DISTRIBUTION_METRICS_PORT: String(ports.distribution),
    });
    procs["sink"] = startServiceProcess("partner-sink", {
      ...common,
      PARTNER_ID: PARTNER,
      PARTNER_DATABASE_URL: partnerDb.url,
      HUB_PUBLIC_KEYS: `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`,
      PARTNER_BOOTSTRAP: "none",
      PARTNER_HTTP_PORT: String(ports.sink),
    });
    procs["console"] = startServiceProcess("admin/console", {
      ...common,
      CONSOLE_PORT: String(ports.console),
      CONSOLE_USERS: [
        consoleUserEntry("olivia", "operator", PASSWORD),
        consoleUserEntry("lee", "law-enforcement", PASSWORD),
        consoleUserEntry("vic", "viewer", PASSWORD),
      ].join(","),
    });
    try {
      for (const name of Object.keys(ports) as (keyof typeof ports)[]) {
        await waitFor(`${name} ready`, async () => (await fetch(`${url(name)}/readyz`)).ok, 120_000, 500);
      }
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${outputOf()}`);
    }

    // The workload: signed submissions over HTTP, two refused at ingest, and bytes that are no submission for dedup to refuse.
    const client = new IngestClient(url("ingest"), force);
    const res = await client.submit(Array.from({ length: SUBMISSIONS }, () => signedSubmission(force)));
    expect(res.items.every((i) => i.status === "accepted")).toBe(true);
    const tampered = { ...submissionToJson(signedSubmission(force)), gradingStatus: "confirmed" };
    const badHash = { ...submissionToJson(signedSubmission(force)), hashes: [{ alg: "md5", value: "<b>not-hex</b>" }] };
    await client.submitRaw(Buffer.from(JSON.stringify([tampered, badHash])));
    const producer = createDurableProducer(kafkaAs("test-console"));
    await producer.connect();
    await producer.send({ topic: names.submitted, acks: -1, messages: [{ key: randomUUID(), value: Buffer.from("not avro") }] });
    await producer.disconnect();
    // Caught up: every record's md5 and sha1 held by the partner's sink.
    await waitFor(
      "the partner holds every hash",
      async () =>
        (await partnerDb.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM partner_hashes")).rows[0]?.n === SUBMISSIONS * 2,
      120_000,
      500,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${outputOf()}`);
    });
  }, 300_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    for (const p of Object.values(procs)) await p.kill("SIGTERM").catch(() => undefined);
    await partnerDb?.drop().catch(() => undefined);
    await hubDb?.drop().catch(() => undefined);
  });

  it("refuses a browser without credentials, or with a wrong password", async () => {
    // Chromium reports a 401 it has no (right) credentials for as a failed navigation.
    const refused = async (page: Page, path: string) => {
      try {
        return (await page.goto(`${url("console")}${path}`))?.status();
      } catch (err) {
        return (err as Error).message.includes("ERR_INVALID_AUTH_CREDENTIALS") ? 401 : (err as Error).message;
      }
    };
    const anonymous = await pageAs(null);
    expect(await refused(anonymous, "/")).toBe(401);
    expect(await anonymous.content()).not.toContain(PARTNER);
    expect(await refused(await pageAs("olivia", "not-the-password"), "/dlq")).toBe(401);
    expect(await refused(await pageAs("mallory"), "/lookup?hash=00")).toBe(401);
    const raw = await fetch(`${url("console")}/keys`);
    expect(raw.status).toBe(401);
    expect(raw.headers.get("www-authenticate")).toMatch(/^Basic/);
  });

  it("shows the pipeline and the partner with figures equal to the database's", async () => {
    const page = await pageAs("olivia");
    // Two readings make the throughput column; the first page load is one of them.
    await page.goto(`${url("console")}/`);
    await new Promise((r) => setTimeout(r, 1500));
    // The sink commits its group's offsets (what the hub reads as its lag) just after applying.
    const res = await waitFor(
      "the console shows the partner caught up",
      async () => {
        const r = await page.goto(`${url("console")}/`);
        return (await figures(page))[`${PARTNER}.lag`] === "0" ? r : undefined;
      },
      30_000,
      1_000,
    );
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("default-src 'none'");
    const f = await figures(page);
    const db = hubDb.pool;
    const q = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0]?.n);
    expect(Number(f["records.live"])).toBe(await q("SELECT count(*)::text AS n FROM canonical_records WHERE NOT deleted"));
    expect(Number(f["records.live"])).toBe(SUBMISSIONS);
    expect(Number(f["ingest.lastHour"])).toBe(await q("SELECT count(*)::text AS n FROM ingest_submissions"));
    expect(Number(f["dedup.lastHour"])).toBe(await q("SELECT count(*)::text AS n FROM applied_submissions"));
    expect(f["dedup.lag"]).toBe("0");
    expect(f["distribution.lag"]).toBe("0");
    expect(f["dedup.outbox"]).toBe("0");
    const admin = kafkaAs("test-console").admin();
    await admin.connect();
    const depth = await readTopicDepth(admin, names.rejected).finally(() => admin.disconnect());
    expect(depth).toBe(3);
    expect(Number(f["dlq.depth"])).toBe(depth);
    const heads = (
      await db.query<{ partition: number; last_seq: string }>(
        "SELECT partition, last_seq::text FROM feed_partitions WHERE partner_id = $1",
        [PARTNER],
      )
    ).rows;
    expect(heads.length).toBe(3);
    for (const h of heads) expect(f[`${PARTNER}.head.p${h.partition}`]).toBe(h.last_seq);
    expect(Number(f[`${PARTNER}.holdings`])).toBe(await q(`SELECT count(*)::text AS n FROM feed_entries WHERE partner_id = '${PARTNER}'`));
    expect(Number(f[`${PARTNER}.holdings`])).toBe(SUBMISSIONS * 2);
    expect(f[`${PARTNER}.lag`]).toBe("0");
    expect(await page.$eval(`[data-partner="${PARTNER}"] [data-alerts]`, (e) => e.getAttribute("data-alerts"))).toBe("0");
    // The partner's name is shown as text, its angle brackets escaped, not markup.
    expect(await page.$eval(`[data-partner="${PARTNER}"] .sub`, (e) => e.textContent)).toBe("UK hotline <synthetic>");
    expect(await page.$$("script")).toHaveLength(0);
    await page.screenshot({ path: `${SHOTS}/console-overview.png`, fullPage: true });
  });

  it("shows the DLQ by reason and keys, and re-drives a reason as the signed-in operator", async () => {
    const page = await pageAs("olivia");
    expect((await page.goto(`${url("console")}/dlq`))?.status()).toBe(200);
    const f = await figures(page);
    expect(f["dlq.total"]).toBe("3");
    expect(f["dlq.BAD_SIGNATURE.ingest"]).toBe("1");
    expect(f["dlq.INVALID_HASH.ingest"]).toBe("1");
    expect(f["dlq.BAD_MAGIC.dedup"]).toBe("1");
    await page.screenshot({ path: `${SHOTS}/console-dlq.png`, fullPage: true });
    // A viewer sees the same counts and no re-drive button.
    const viewer = await pageAs("vic");
    await viewer.goto(`${url("console")}/dlq`);
    expect(await viewer.$$('form[action="/dlq/redrive"]')).toHaveLength(0);
    // Bytes that are no submission cannot be re-driven: matched 1, skipped 1; the action is audited as olivia.
    await Promise.all([page.waitForNavigation(), page.click('tr[data-reason="BAD_MAGIC"] button')]);
    const r = await figures(page);
    expect(r["redrive.matched"]).toBe("1");
    expect(await page.$eval("#redrive", (e) => e.textContent)).toContain("as dlq.redriven by olivia");
    const keys = await pageAs("vic");
    expect((await keys.goto(`${url("console")}/keys`))?.status()).toBe(200);
    const states = await keys.$$eval("[data-key]", (els) => els.map((e) => e.getAttribute("data-state")));
    expect(states).toEqual(["valid", "valid"]);
  });

  it("finds where a hash is: its record, the partner holding it and when it was disclosed; law-enforcement fields by role", async () => {
    const { rows } = await hubDb.pool.query<{ value: string; record_id: string }>(
      "SELECT h.value, h.record_id::text FROM record_hashes h WHERE h.alg = 'md5' ORDER BY h.value LIMIT 1",
    );
    const hash = rows[0] as { value: string; record_id: string };
    const page = await pageAs("olivia");
    await page.goto(`${url("console")}/`);
    await page.type('form.lookup input[name="hash"]', hash.value.toUpperCase());
    await Promise.all([page.waitForNavigation({ timeout: 60_000 }), page.click("form.lookup button")]);
    expect(await page.$eval("[data-record]", (e) => e.getAttribute("data-record"))).toBe(hash.record_id);
    expect(await page.$$eval("[data-holder]", (els) => els.map((e) => e.getAttribute("data-holder")))).toEqual([PARTNER, PARTNER]);
    const disclosed = await page.$$eval("[data-disclosed-to]", (els) => els.map((e) => e.getAttribute("data-disclosed-to")));
    expect(disclosed).toEqual([PARTNER, PARTNER]); // md5 and sha1, one feed.upsert each
    const text = (await page.$eval("main", (e) => e.textContent)) ?? "";
    expect(text).not.toContain("force-a");
    expect(text).not.toContain("SYN-CASE-0001");
    await page.screenshot({ path: `${SHOTS}/console-lookup.png`, fullPage: true });
    const le = await pageAs("lee");
    await le.goto(`${url("console")}/lookup?hash=${hash.value}`);
    const leText = (await le.$eval("main", (e) => e.textContent)) ?? "";
    expect(leText).toContain("force-a");
    expect(leText).toContain("SYN-CASE-0001");
    // Both consultations and the re-drive are on audit.v1, as who did them, without the value looked up.
    const codec = new AvroCodec();
    const events = (await readTopicToEnd(kafkaAs("test-console-audit"), names.audit, "test-console"))
      .flatMap((v) => expandAuditEvent(codec.decode("AuditEvent", v).value))
      .filter((e) => e.service === "admin");
    const lookups = events.filter((e) => e.action === "console.lookup" && e.subjectId === hash.record_id);
    expect(lookups.map((e) => [e.actor, e.detail["role"], e.detail["algs"]])).toEqual([
      ["olivia", "operator", "md5"],
      ["lee", "law-enforcement", "md5"],
    ]);
    expect(JSON.stringify(events)).not.toContain(hash.value);
    expect(events.find((e) => e.action === "dlq.redriven")?.actor).toBe("olivia");
  });
});
