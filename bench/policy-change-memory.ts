/**
 * Memory of distribution under policy changes on a fixed dataset, with nothing else sent: --records
 * synthetic canonical records are distributed before --instances distribution processes start (as
 * the services are started: runtime-settings.ts), then industry's minimum grading status flips every
 * --every-ms, --changes times (as the soak does). Samples each process's resident set by kind of
 * mapping from /proc/<pid>/smaps and its V8 heap (test/chaos/heap-probe.ts), and prints each
 * process's peak and mean resident set between changes (read every second) and each
 * reconciliation's time (from its log); writes bench-results/policy-change-memory.json. Uses the
 * local stack.
 *
 *   node bench/policy-change-memory.ts [--records 2300] [--changes 40] [--every-ms 3000] [--instances 1]
 *     [--flags "..."] [--env K=V,...]
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { parseArgs, promisify } from "node:util";
import { registerPartner } from "../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../services/distribution/main.ts";
import type { PartnerPolicy } from "../services/distribution/policy.ts";
import { setPolicy } from "../services/distribution/policy-store.ts";
import { processCanonicalBatch, reconcilePartner } from "../services/distribution/processor.ts";
import type { DistributionDeps } from "../services/distribution/processor.ts";
import { createLogger } from "../services/shared/logging.ts";
import { servicePrincipal } from "../services/shared/kafka-access.ts";
import { migrate } from "../services/shared/postgres.ts";
import { SERVICE_MALLOC_ENV, SERVICE_NODE_FLAGS } from "../services/shared/runtime-settings.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { privateKeyFromPem } from "../services/shared/wire/signing.ts";
import type { CanonicalRecord, Hash, UkCategory } from "../services/shared/wire/records.ts";
import { hotlinePolicy, industryPolicy, randomHex, sampleCanonicalRecord } from "../test/support/fixtures.ts";
import { registerFreshKey } from "../test/support/keys.ts";
import { freshDatabase, freshTopics, hubServiceEnv, principalEnv } from "../test/support/stack.ts";
import { residentByMapping } from "./pipeline/memory.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "2300" },
    changes: { type: "string", default: "40" },
    "every-ms": { type: "string", default: "3000" },
    flags: { type: "string", default: "" },
    instances: { type: "string", default: "1" },
    env: { type: "string", default: "" },
  },
});
const RECORDS = Number(values.records);
const CHANGES = Number(values.changes);
const EVERY_MS = Number(values["every-ms"]);
const INSTANCES = Number(values.instances);
const MB = 1024 * 1024;
const sleep = promisify(setTimeout);
const root = fileURLToPath(new URL("../", import.meta.url));

const codec = new AvroCodec();
const PSEUDONYM_SECRET = "rss-bench-pseudonym-secret-0123456789";
const hubDb = await freshDatabase("rssproc");
const { names, namespace } = await freshTopics(["hotline-uk", "industry-x"]);
const keyFile = join(mkdtempSync(join(tmpdir(), "hashrelay-hub-")), "hub.pem");
const key = await registerFreshKey(hubDb.pool, "hub", "hub", { validFrom: new Date(Date.now() - 3_600_000), file: keyFile });
await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
let industry: Omit<PartnerPolicy, "version"> = industryPolicy("industry-x", { feedPartitions: 3, delivery: "both" });
const seedPolicies: PartnerPolicy[] = [];
for (const p of [hotlinePolicy("hotline-uk", { feedPartitions: 3 }), industry]) {
  await registerPartner(hubDb.pool, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
  seedPolicies.push({ ...p, version: await setPolicy(hubDb.pool, p) });
}

const grades: { uk: UkCategory; ics: "A1" | "B2" | null }[] = [
  { uk: "A", ics: "A1" },
  { uk: "B", ics: "B2" },
  { uk: "C", ics: null },
];
const hash = (alg: "md5" | "sha1", bytes: number): Hash => ({ alg, value: randomHex(bytes), quality: null });
const records: CanonicalRecord[] = Array.from({ length: RECORDS }, (_, i) => ({
  ...sampleCanonicalRecord(),
  recordId: randomUUID(),
  revision: 1,
  hashes: [hash("md5", 16), hash("sha1", 20)],
  classification: grades[i % 3] as CanonicalRecord["classification"],
  gradingStatus: i % 2 ? "confirmed" : "indicative",
}));
// Distributed here, in this process, so that the service process starts on a database that holds
// them and what it does afterwards is the policy changes alone.
const seedDeps: DistributionDeps = {
  pool: hubDb.pool,
  codec,
  topics: names,
  hub: { keyId: key.keyId, privateKey: privateKeyFromPem(key.privateKeyPem), pseudonymSecret: PSEUDONYM_SECRET },
  consumerGroup: "rss-bench-seed",
  logger: createLogger("rss-bench", "silent"),
  policies: () => seedPolicies,
};
for (const p of seedPolicies) await reconcilePartner(seedDeps, p);
for (let i = 0; i < records.length; i += 100) {
  const batch = records.slice(i, i + 100);
  await processCanonicalBatch(
    seedDeps,
    names.canonical,
    0,
    batch.map((r, j) => ({ offset: String(i + j), value: codec.encode("CanonicalRecord", r) })),
  );
}

const extraEnv = Object.fromEntries(
  values.env
    .split(",")
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);
const flags = values.flags ? values.flags.split(" ") : [...SERVICE_NODE_FLAGS];
/** Instances as the hub runs them: the same database, each with its own relay, exports and refresh. */
const instances = Array.from({ length: INSTANCES }, () => {
  const heapFile = join(mkdtempSync(join(tmpdir(), "rss-bench-")), "heap.jsonl");
  const child = spawn(process.execPath, [...flags, `${root}services/distribution/main.ts`], {
    cwd: root,
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_OPTIONS")),
      ...SERVICE_MALLOC_ENV,
      ...hubServiceEnv(hubDb.url, namespace),
      ...principalEnv(servicePrincipal("distribution")),
      HUB_KEY_ID: key.keyId,
      HUB_SIGNING_KEY_FILE: keyFile,
      DISTRIBUTION_PSEUDONYM_SECRET: PSEUDONYM_SECRET,
      DISTRIBUTION_EXPORT_INTERVAL_MS: "15000",
      DISTRIBUTION_SNAPSHOT_EVERY: "4",
      DISTRIBUTION_POLICY_REFRESH_MS: "2000",
      NODE_OPTIONS: `--import=${root}test/chaos/heap-probe.ts`,
      CHAOS_HEAP_FILE: heapFile,
      CHAOS_HEAP_EVERY_MS: "1000",
      LOG_LEVEL: "info", // for the reconciliations' times; warnings and errors are passed on
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  // The service's log: each reconciliation's time is kept, warnings and errors passed on.
  const reconcileMs: number[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const entry = line.startsWith("{") ? (JSON.parse(line) as { level?: number; msg?: string; ms?: number }) : {};
    if (entry.msg === "partner feed reconciled with its policy" && entry.ms !== undefined) reconcileMs.push(entry.ms);
    else if ((entry.level ?? 50) >= 40) process.stdout.write(`${line}\n`);
  });
  return { child, pid: child.pid as number, heapFile, reconcileMs };
});

interface Burst {
  readonly change: number;
  readonly peakRssMb: number;
  readonly meanRssMb: number;
  readonly peakHeapTotalMb: number;
}

/** Each change's window (until the next change) from the probe's readings, one a second. */
function burstsOf(heapFile: string): Burst[] {
  const readings = readFileSync(heapFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { t: number; rss: number; heapTotal: number });
  return changedAt.map((from, k) => {
    const to = changedAt[k + 1] ?? from + EVERY_MS;
    const w = readings.filter((r) => r.t >= from && r.t < to);
    const rss = w.map((r) => r.rss / MB);
    return {
      change: k + 1,
      peakRssMb: Math.round(Math.max(...rss)),
      meanRssMb: rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length),
      peakHeapTotalMb: Math.round(Math.max(...w.map((r) => r.heapTotal / MB))),
    };
  });
}

function heap(heapFile: string): { heapTotal: number; heapUsed: number; newSpace: number } {
  const last = readFileSync(heapFile, "utf8").trim().split("\n").at(-1) ?? "{}";
  const h = JSON.parse(last) as { heapTotal: number; heapUsed: number; newSpace: number };
  return { heapTotal: Math.round(h.heapTotal / MB), heapUsed: Math.round(h.heapUsed / MB), newSpace: Math.round(h.newSpace / MB) };
}

await hubDb.pool.query("DELETE FROM feed_outbox");
await sleep(30_000); // started, with its first exports and snapshot
const sample = () => instances.map((i) => ({ ...residentByMapping(i.pid), ...heap(i.heapFile) }));
const start = sample();
const samples: { change: number; instances: ReturnType<typeof sample> }[] = [{ change: 0, instances: start }];
const changedAt: number[] = [];
console.log(
  `records ${RECORDS}, changes ${CHANGES} every ${EVERY_MS} ms, ${INSTANCES} instance(s), flags ${flags.join(" ")} ${values.env}`,
);
console.log(`change 0: ${JSON.stringify(start)}`);
for (let change = 1; change <= CHANGES; change++) {
  industry = { ...industry, minGradingStatus: industry.minGradingStatus === "confirmed" ? "indicative" : "confirmed" };
  await setPolicy(hubDb.pool, industry);
  changedAt.push(Date.now());
  await sleep(EVERY_MS);
  samples.push({ change, instances: sample() });
  if (change % 5 === 0) console.log(`change ${change}: ${JSON.stringify(samples.at(-1)?.instances)}`);
}
await sleep(20_000);
const end = sample();
const bursts = instances.map((i) => burstsOf(i.heapFile));
mkdirSync("bench-results", { recursive: true });
writeFileSync(
  "bench-results/policy-change-memory.json",
  JSON.stringify(
    {
      records: RECORDS,
      changes: CHANGES,
      everyMs: EVERY_MS,
      flags,
      samples,
      afterQuiet: end,
      bursts,
      reconcileMs: instances.map((i) => i.reconcileMs),
    },
    null,
    1,
  ),
);
console.log(`after 20 s quiet: ${JSON.stringify(end)}`);
end.forEach((e, i) => {
  const s = start[i] as { rssMb: number };
  const b = bursts[i] ?? [];
  const most = (f: (w: Burst) => number) => Math.max(...b.map(f));
  const mean = (f: (w: Burst) => number) => b.reduce((sum, w) => sum + f(w), 0) / Math.max(1, b.length);
  console.log(
    `instance ${i + 1}: rss ${s.rssMb} -> ${e.rssMb} MB (${(((e.rssMb - s.rssMb) / s.rssMb) * 100).toFixed(1)}%); ` +
      `between changes: peak ${most((w) => w.peakRssMb)} MB, mean ${mean((w) => w.meanRssMb).toFixed(1)} MB, ` +
      `peak heapTotal ${most((w) => w.peakHeapTotalMb)} MB; reconciliations ${instances[i]?.reconcileMs.join(", ")} ms`,
  );
});
for (const i of instances) {
  i.child.kill("SIGTERM");
  await new Promise((r) => i.child.once("exit", r));
}
await hubDb.drop();
