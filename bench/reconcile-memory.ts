/**
 * Memory of policy reconciliation (processor.ts reconcilePartner) on a fixed dataset, with nothing
 * else running: distributes --records synthetic canonical records to two partners, then changes
 * industry's policy --changes times (its minimum grading status, back and forth, as the soak does)
 * and reconciles after each. Prints, every few changes, the resident set and V8's heap (with the
 * committed size of each space), and the peak of each sampled every 20 ms during a reconciliation.
 * Writes bench-results/reconcile-memory.json. Uses the local stack's PostgreSQL only.
 *
 * With --release-every N, a memory-reducing collection runs after every N slices (as distribution
 * does: main.ts), which needs --expose-gc.
 *
 *   node --expose-gc bench/reconcile-memory.ts [--records 3000] [--changes 150] [--release-every 0]
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { getHeapSpaceStatistics } from "node:v8";
import { parseArgs } from "node:util";
import { createLogger } from "../services/shared/logging.ts";
import { migrate } from "../services/shared/postgres.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { generateSigningKeyPair, privateKeyFromPem } from "../services/shared/wire/signing.ts";
import { topicNames } from "../services/shared/topics.ts";
import type { CanonicalRecord, Hash, UkCategory } from "../services/shared/wire/records.ts";
import type { HubSigner } from "../services/distribution/feed-writer.ts";
import type { PartnerPolicy } from "../services/distribution/policy.ts";
import { processCanonicalBatch, reconcilePartner } from "../services/distribution/processor.ts";
import type { DistributionDeps } from "../services/distribution/processor.ts";
import { hotlinePolicy, industryPolicy, randomHex, sampleCanonicalRecord } from "../test/support/fixtures.ts";
import { freshDatabase } from "../test/support/stack.ts";
import { releaseEvery } from "../services/shared/release-memory.ts";
import { residentByMapping } from "./pipeline/memory.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "3000" },
    changes: { type: "string", default: "150" },
    "release-every": { type: "string", default: "0" },
  },
});
const RECORDS = Number(values.records);
const CHANGES = Number(values.changes);
const RELEASE_EVERY = Number(values["release-every"]);
const MB = 1024 * 1024;

const MIGRATIONS = fileURLToPath(new URL("../services/distribution/migrations/", import.meta.url));
const codec = new AvroCodec();
const topics = topicNames("rss-bench");
const hub: HubSigner = {
  keyId: "hub:bench",
  privateKey: privateKeyFromPem(generateSigningKeyPair().privateKeyPem),
  pseudonymSecret: "reconcile-memory-bench-secret-0123",
};

function rssNow(): number {
  const status = readFileSync("/proc/self/status", "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

function snapshot() {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.physical_space_size / MB)]));
  return {
    rss: Math.round(m.rss / MB),
    heapTotal: Math.round(m.heapTotal / MB),
    heapUsed: Math.round(m.heapUsed / MB),
    external: Math.round(m.external / MB),
    spaces,
    maps: residentByMapping("self"),
  };
}

const db = await freshDatabase("rssbench");
await migrate(db.pool, [{ namespace: "distribution", dir: MIGRATIONS }]);
let industry: PartnerPolicy = industryPolicy("industry-x", { feedPartitions: 3, delivery: "both" });
const policies: PartnerPolicy[] = [hotlinePolicy("hotline-uk", { feedPartitions: 3 }), industry];
const deps: DistributionDeps = {
  pool: db.pool,
  codec,
  topics,
  hub,
  consumerGroup: "rss-bench",
  logger: createLogger("rss-bench", "silent"),
  policies: () => policies,
  ...(RELEASE_EVERY > 0 ? { afterReconcileSlice: releaseEvery(RELEASE_EVERY) } : {}),
};

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
for (let i = 0, offset = 0; i < records.length; i += 100, offset += 100) {
  const batch = records.slice(i, i + 100);
  await processCanonicalBatch(
    deps,
    topics.canonical,
    0,
    batch.map((r, j) => ({ offset: String(offset + j), value: codec.encode("CanonicalRecord", r) })),
  );
}
for (const p of policies) await reconcilePartner(deps, p);
// The outbox is not relayed here: keep it from growing into what each reconciliation reads.
await db.pool.query("DELETE FROM feed_outbox");

const samples: ({ change: number; issued: number; ms: number; peakRss: number; peakHeapUsed: number } & ReturnType<typeof snapshot>)[] = [];
const start = snapshot();
console.log(`records ${RECORDS}, changes ${CHANGES}; before: ${JSON.stringify(start)}`);
for (let change = 1; change <= CHANGES; change++) {
  industry = {
    ...industry,
    version: industry.version + 1,
    minGradingStatus: industry.minGradingStatus === "confirmed" ? "indicative" : "confirmed",
  };
  policies[1] = industry;
  let peakRss = 0;
  let peakHeapUsed = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssNow());
    peakHeapUsed = Math.max(peakHeapUsed, process.memoryUsage().heapUsed);
  }, 20);
  const t0 = performance.now();
  const issued = await reconcilePartner(deps, industry);
  const ms = Math.round(performance.now() - t0);
  clearInterval(sampler);
  await db.pool.query("DELETE FROM feed_outbox");
  const s = { change, issued, ms, peakRss: Math.round(peakRss / MB), peakHeapUsed: Math.round(peakHeapUsed / MB), ...snapshot() };
  samples.push(s);
  if (change % 10 === 0 || change === 1) console.log(JSON.stringify(s));
}
await db.drop();
mkdirSync("bench-results", { recursive: true });
writeFileSync("bench-results/reconcile-memory.json", JSON.stringify({ records: RECORDS, changes: CHANGES, start, samples }, null, 1));
const end = samples.at(-1);
const meanMs = samples.reduce((sum, s) => sum + s.ms, 0) / Math.max(1, samples.length);
console.log(
  `rss ${start.rss} -> ${end?.rss} MB; peak rss during a reconciliation ${Math.max(...samples.map((s) => s.peakRss))} MB, ` +
    `peak heap used ${Math.max(...samples.map((s) => s.peakHeapUsed))} MB; ${meanMs.toFixed(0)} ms a reconciliation (release every ${RELEASE_EVERY || "-"})`,
);
