/**
 * Benchmark: dedup's sustained rate of verified and applied submissions against the real stack,
 * beside the bare cost of Ed25519 verification of the same submissions in the same run.
 * Synthetic data only (random digests; a third of images seen by a second force).
 *
 *   node bench/dedup.ts [--count 20000]
 *
 * Pre-publishes N signed submissions to a fresh namespace, then starts one in-process dedup and
 * times until every submission is applied (stored offsets reach the topic's end and the outbox is
 * relayed). Prints a table and writes bench-results/dedup.json; drops its database at the end.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { startDedup } from "../services/dedup/main.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import { createDurableProducer } from "../services/shared/kafka.ts";
import { servicePrincipal } from "../services/shared/kafka-access.ts";
import { PgKeyRegistry, verifySignedRecord } from "../services/shared/key-registry.ts";
import type { Hash, Submission } from "../services/shared/wire/records.ts";
import { registerTestAgency, signedSubmission } from "../test/support/agencies.ts";
import { randomHex } from "../test/support/fixtures.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv } from "../test/support/stack.ts";

const countArg = process.argv.indexOf("--count");
const N = countArg > 0 ? Number(process.argv[countArg + 1]) : 20_000;
const codec = new AvroCodec();

async function main(): Promise<void> {
  const db = await freshDatabase("bench-dedup");
  try {
    const { names, namespace } = await freshTopics([], 6);
    const forces = [await registerTestAgency(db.pool, "force-a"), await registerTestAgency(db.pool, "force-b")];
    const subs: Submission[] = [];
    for (let i = 0; subs.length < N; i++) {
      const md5: Hash = { alg: "md5", value: randomHex(16), quality: null };
      subs.push(
        signedSubmission(forces[i % 2] as (typeof forces)[number], { hashes: [md5, { alg: "sha1", value: randomHex(20), quality: null }] }),
      );
      if (i % 3 === 0 && subs.length < N) subs.push(signedSubmission(forces[(i + 1) % 2] as (typeof forces)[number], { hashes: [md5] }));
    }
    const encoded = subs.map((s) => ({ key: `md5:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) }));

    // Baseline: decode + verify only, same submissions, same process.
    const registry = new PgKeyRegistry(db.pool);
    const writer = codec.schema("Submission").type;
    const v0 = performance.now();
    for (const e of encoded) {
      const { value } = codec.decode("Submission", e.value);
      await verifySignedRecord("Submission", writer, value, registry, { ownerKind: "agency", ownerId: value.agencyId, at: new Date() });
    }
    const verifySeconds = (performance.now() - v0) / 1000;

    // Pre-publishing is the operator's doing (the admin principal); dedup runs as its own principal.
    const kafka = kafkaAs("bench-dedup");
    const producer = createDurableProducer(kafka);
    await producer.connect();
    for (let i = 0; i < encoded.length; i += 1000)
      await producer.send({ topic: names.submitted, acks: -1, messages: encoded.slice(i, i + 1000) });
    await producer.disconnect();

    const t0 = performance.now();
    const dedup = await startDedup({
      KAFKA_BROKERS: stackEnv().brokers,
      ...principalEnv(servicePrincipal("dedup")),
      DATABASE_URL: db.url,
      TOPIC_NAMESPACE: namespace,
      LOG_LEVEL: "warn",
      CONSUMER_SESSION_TIMEOUT_MS: 10_000,
    });
    for (;;) {
      const { rows } = await db.pool.query<{ a: string; o: string }>(
        "SELECT (SELECT count(*) FROM applied_submissions)::text AS a, (SELECT count(*) FROM outbox)::text AS o",
      );
      if (Number(rows[0]?.a) >= N && Number(rows[0]?.o) === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const dedupSeconds = (performance.now() - t0) / 1000;
    await dedup.stop();
    const records = Number((await db.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM canonical_records")).rows[0]?.n);

    const result = {
      at: new Date().toISOString(),
      count: N,
      canonicalRecords: records,
      verifyOnlyPerSecond: Math.round(N / verifySeconds),
      dedupAppliedPerSecond: Math.round(N / dedupSeconds),
      dedupSecondsIncludingStartAndGroupJoin: Number(dedupSeconds.toFixed(2)),
      ratioDedupToVerifyOnly: Number((verifySeconds / dedupSeconds).toFixed(3)),
      loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
    };
    console.log("\ndedup benchmark (one run)");
    console.log(`  submissions                      ${N} -> ${records} canonical records`);
    console.log(`  decode+verify only               ${result.verifyOnlyPerSecond}/s`);
    console.log(`  dedup verified+applied+relayed   ${result.dedupAppliedPerSecond}/s (includes start-up and group join)`);
    console.log(`  ratio dedup / verify-only        ${result.ratioDedupToVerifyOnly}`);
    console.log(`  load average                     ${result.loadAverage.join(" ")}`);
    mkdirSync("bench-results", { recursive: true });
    writeFileSync("bench-results/dedup.json", `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await db.drop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench/dedup failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
