/**
 * The built images run the pipeline as the Kubernetes manifests deploy it: ingest, dedup and
 * distribution from the hub image and the partner sink from the partner-sink image, each started
 * with its Deployment's arguments, settings and hardening (the image's own user, read-only root file
 * system, /tmp a tmpfs, every capability dropped, no privilege escalation, the CA and hub key mounted
 * where the manifests mount them). A force pushes signed synthetic submissions over HTTP and every
 * hash must land in the partner's database. Then the images themselves: the user is the manifests'
 * runAsUser and not root, the root file system refuses writes, and node_modules holds every
 * production dependency and no development one.
 *
 * Runs in the containers pass only (`make test STACK=containers`, after `make images`). The
 * containers share the host's network, so the test stack's broker (advertised as 127.0.0.1) is
 * reachable as it is from the tests; what differs from the manifests is listed in TEST_OVERRIDES.
 */
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import { partnerHoldings } from "../../services/distribution/reconcile.ts";
import { IngestClient } from "../../services/force-cli/client.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { partnerPrincipal, servicePrincipal } from "../../services/shared/kafka-access.ts";
import { migrate } from "../../services/shared/postgres.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { imageName, requireImages } from "../support/container-stack.ts";
import { deploymentPod, manifests } from "../support/deploy-manifests.ts";
import type { Manifest } from "../support/deploy-manifests.ts";
import { freePort, startFromManifest } from "../support/manifest-container.ts";
import type { ManifestContainer } from "../support/manifest-container.ts";
import { hotlinePolicy, randomHex } from "../support/fixtures.ts";
import { createHubKey } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, principalEnv, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

/**
 * Where the test departs from the manifests, and why: the test stack's addresses and credentials
 * instead of the placeholders, ports free on the shared host network, one feed replica for the one
 * broker, this test's hub key and topic namespace. Every other variable is the manifests' value.
 */
const TEST_OVERRIDES = [
  "KAFKA_BROKERS",
  "KAFKA_SASL_PASSWORD",
  "DATABASE_URL",
  "PARTNER_DATABASE_URL",
  "S3_ENDPOINT",
  "S3_REGION",
  "S3_BUCKET",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "TOPIC_NAMESPACE",
  "INGEST_PORT",
  "PARTNER_HTTP_PORT",
  "DISTRIBUTION_FEED_REPLICATION",
  "DISTRIBUTION_PSEUDONYM_SECRET",
  "HUB_KEY_ID",
  "HUB_PUBLIC_KEYS",
];

const hub = manifests("hub");
const sink = manifests("partner-sink");
const PARTNER = "industry-x"; // the partner the sink manifest is written for
const running: Record<string, ManifestContainer> = {};
const files = mkdtempSync(join(tmpdir(), "hashrelay-image-"));
let hubDb: TestDatabase;
let partnerDb: TestDatabase;
let force: AgencySigner;
let ingestPort: number;

/** Starts one Deployment's container as its manifest says (test/support/manifest-container.ts). */
async function deploy(
  name: string,
  image: string,
  all: Manifest[],
  deployment: string,
  values: Record<string, string>,
  mounts: Record<string, string>,
  ready: RegExp,
): Promise<void> {
  running[name] = await startFromManifest({ image, all, deployment, values, mounts, ready, overrides: TEST_OVERRIDES });
}

/** What a process in the container prints, and its exit code. */
async function run(name: string, command: string[]): Promise<{ exitCode: number; output: string }> {
  const r = await (running[name] as ManifestContainer).container.exec(command);
  return { exitCode: r.exitCode, output: r.output.trim() };
}

function devPackages(): { dev: string[]; production: string[] } {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const dev = Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith("node_modules/") && p.dev)
    .map(([path]) => path.slice("node_modules/".length));
  return { dev, production: Object.keys(pkg.dependencies) };
}

beforeAll(async () => {
  await requireImages(["hashrelay", "hashrelay-partner-sink"]);
  const stack = stackEnv();
  hubDb = await freshDatabase("image");
  partnerDb = await freshDatabase("imagepartner");
  const { namespace } = await freshTopics([PARTNER], 3);
  const hubKey = await createHubKey(hubDb);
  force = await registerTestAgency(hubDb.pool, "force-a");
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  await registerPartner(hubDb.pool, { partnerId: PARTNER, name: `Synthetic ${PARTNER}` });
  await setPolicy(hubDb.pool, hotlinePolicy(PARTNER));

  // Kubernetes mounts a Secret with defaultMode 0400 owned by root, and the pod's fsGroup (1000)
  // as its group with group read added: laid out the same way here.
  mkdirSync(join(files, "hub-key"));
  copyFileSync(hubKey.file, join(files, "hub-key", "hub.pem"));
  if (process.getuid?.() === 0) chownSync(join(files, "hub-key", "hub.pem"), 0, 1000);
  chmodSync(join(files, "hub-key", "hub.pem"), process.getuid?.() === 0 ? 0o440 : 0o444);
  mkdirSync(join(files, "kafka-ca"));
  copyFileSync(process.env["KAFKA_SSL_CA_FILE"] as string, join(files, "kafka-ca", "ca.pem"));
  const mounts = { "/etc/hashrelay/kafka-ca": join(files, "kafka-ca"), "/etc/hashrelay/hub-key": join(files, "hub-key") };

  const password = (principal: string) => principalEnv(principal).KAFKA_SASL_PASSWORD;
  const common = {
    KAFKA_BROKERS: stack.brokers.join(","),
    TOPIC_NAMESPACE: namespace,
    DATABASE_URL: hubDb.url,
  };
  const s3 = {
    S3_ENDPOINT: stack.s3.endpoint,
    S3_REGION: stack.s3.region,
    S3_BUCKET: stack.s3.bucket,
    S3_ACCESS_KEY_ID: stack.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: stack.s3.secretAccessKey,
  };
  ingestPort = await freePort();
  const image = imageName("hashrelay");
  // One at a time: four Node processes starting at once on two cores is what slows a start most.
  await deploy(
    "ingest",
    image,
    hub,
    "hashrelay-ingest",
    { ...common, ...s3, INGEST_PORT: String(ingestPort), KAFKA_SASL_PASSWORD: password(servicePrincipal("ingest")) },
    mounts,
    /"msg":"ingest listening"/,
  );
  await deploy(
    "dedup",
    image,
    hub,
    "hashrelay-dedup",
    { ...common, KAFKA_SASL_PASSWORD: password(servicePrincipal("dedup")) },
    mounts,
    /"msg":"dedup running"/,
  );
  await deploy(
    "distribution",
    image,
    hub,
    "hashrelay-distribution",
    {
      ...common,
      ...s3,
      KAFKA_SASL_PASSWORD: password(servicePrincipal("distribution")),
      HUB_KEY_ID: hubKey.keyId,
      DISTRIBUTION_PSEUDONYM_SECRET: "image-test-pseudonym-secret-0123456789",
      DISTRIBUTION_FEED_REPLICATION: "1",
    },
    mounts,
    /"msg":"distribution running"/,
  );
  await deploy(
    "sink",
    imageName("hashrelay-partner-sink"),
    sink,
    "hashrelay-partner-sink",
    {
      ...s3,
      KAFKA_BROKERS: common.KAFKA_BROKERS,
      TOPIC_NAMESPACE: namespace,
      KAFKA_SASL_PASSWORD: password(partnerPrincipal(PARTNER)),
      PARTNER_DATABASE_URL: partnerDb.url,
      PARTNER_HTTP_PORT: String(await freePort()),
      HUB_PUBLIC_KEYS: `${hubKey.keyId}=${hubKey.publicKey.toString("base64")}`,
    },
    mounts,
    /"msg":"partner sink running"/,
  );
}, 600_000);

afterAll(async () => {
  for (const r of Object.values(running)) await r.container.stop({ timeout: 20_000 }).catch(() => undefined);
  await partnerDb?.drop().catch(() => undefined);
  await hubDb?.drop().catch(() => undefined);
  rmSync(files, { recursive: true, force: true });
});

describe("hub and partner-sink images", () => {
  it("carry a force's signed submissions from ingest to the partner's database", async (ctx) => {
    ctx.onTestFailed(() => {
      for (const [name, r] of Object.entries(running)) console.error(`--- ${name}\n${r.output.join("").slice(-2500)}`);
    });
    const submissions: Submission[] = [];
    for (let i = 0; i < 20; i++) {
      const hashes: Hash[] = [
        { alg: "md5", value: randomHex(16), quality: null },
        { alg: "sha1", value: randomHex(20), quality: null },
      ];
      submissions.push(signedSubmission(force, { hashes, grade: { uk: i % 2 ? "A" : "C", ics: null, vics: null } }));
    }
    const response = await new IngestClient(`http://127.0.0.1:${ingestPort}`, force).submit(submissions);
    expect(response.items.map((item) => item.status)).toEqual(submissions.map(() => "accepted"));

    const expected = submissions.flatMap((s) => s.hashes.map((h) => `${h.alg}:${h.value}`));
    const held = await waitFor(
      "every hash in the partner database",
      async () => {
        const holdings = await partnerHoldings(partnerDb.pool);
        return expected.every((k) => holdings.has(k)) ? holdings : undefined;
      },
      120_000,
      500,
    );
    expect(expected.map((k) => held.get(k))).toEqual(submissions.flatMap((s) => s.hashes.map(() => s.grade.uk)));
  });

  it("run as the manifests' non-root user, with a read-only root and no capabilities or privilege escalation", async () => {
    for (const [name, all, deployment] of [
      ["ingest", hub, "hashrelay-ingest"],
      ["sink", sink, "hashrelay-partner-sink"],
    ] as const) {
      const { pod } = deploymentPod(all, deployment);
      // The image's own user (the container was started without one), as Kubernetes' runAsUser says.
      const uid = await run(name, ["id", "-u"]);
      expect(uid.output).toBe(String(pod.runAsUser));
      expect(uid.output).not.toBe("0");
      const write = await run(name, ["sh", "-c", "touch /app/written-at-run-time"]);
      expect(write.exitCode).not.toBe(0);
      expect(write.output).toMatch(/Read-only file system/);
      expect((await run(name, ["sh", "-c", "touch /tmp/written-at-run-time"])).exitCode).toBe(0);
      // The service process itself: no effective capability, no_new_privs set.
      const status = (await run(name, ["cat", "/proc/1/status"])).output;
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    }
  });

  it("hold every production dependency and no development dependency", async () => {
    const { dev, production } = devPackages();
    expect(dev).toContain("vitest"); // the lock file names the dev tree, so the check below can fail
    const present = async (name: string, packages: string[]) =>
      JSON.parse(
        (
          await run(name, [
            "node",
            "-e",
            "const fs = require('node:fs'); console.log(JSON.stringify(process.argv.slice(1).filter((p) => fs.existsSync('/app/node_modules/' + p + '/package.json'))))",
            ...packages,
          ])
        ).output,
      ) as string[];
    for (const name of ["ingest", "sink"]) {
      expect(await present(name, production), `${name}: production dependencies`).toEqual(production);
      expect(await present(name, dev), `${name}: development dependencies`).toEqual([]);
    }
  });
});
