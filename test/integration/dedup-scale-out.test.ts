/**
 * Horizontal scale: two dedup instances in one consumer group must reach the same canonical
 * state as one instance over the same submissions (record ids aside, which are random).
 */
import { servicePrincipal } from "../../services/shared/kafka-access.ts";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDedup } from "../../services/dedup/main.ts";
import type { RunningDedup } from "../../services/dedup/main.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { Hash, Submission } from "../../services/shared/wire/records.ts";
import { deriveKeyId } from "../../services/shared/wire/signing.ts";
import { registerAgency } from "../../services/admin/registry.ts";
import { createPublicKey } from "node:crypto";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
let producer: RecordProducer;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  producer = createDurableProducer(kafkaAs("test-scale-out"));
  await producer.connect();
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await producer.disconnect();
});

/** The canonical state with record ids replaced by their (sorted) hash sets. */
async function canonicalState(db: TestDatabase): Promise<string[]> {
  const { rows } = await db.pool.query<{ hashes: string; deleted: boolean; agencies: string }>(
    `SELECT string_agg(h.alg || ':' || h.value, ',' ORDER BY h.alg, h.value) AS hashes, r.deleted,
            (SELECT string_agg(s.agency_id || '=' || s.op || '/' || s.uk, ',' ORDER BY s.agency_id) FROM sightings s WHERE s.record_id = r.record_id) AS agencies
       FROM canonical_records r LEFT JOIN record_hashes h ON h.record_id = r.record_id
      WHERE r.merged_into IS NULL
      GROUP BY r.record_id`,
  );
  return rows.map((r) => `${r.hashes}|${r.deleted}|${r.agencies}`).sort();
}

async function run(instances: number, subs: Submission[], agencies: string[], keys: Map<string, AgencySigner>): Promise<string[]> {
  const db = await freshDatabase("scale");
  cleanups.push(() => db.drop());
  const { names, namespace } = await freshTopics([], 6);
  // Same agencies and keys in both hubs, so the same signed submissions verify in each.
  for (const id of agencies) await registerAgency(db.pool, { agencyId: id, name: id, kind: "force", gradingAuthority: false });
  for (const [id, signer] of keys) {
    const raw = Buffer.from(createPublicKey(signer.privateKey).export({ format: "jwk" }).x as string, "base64url");
    await db.pool.query(
      "INSERT INTO signing_keys (key_id, owner_kind, owner_id, public_key, valid_from) VALUES ($1, 'agency', $2, $3, now() - interval '1 hour')",
      [deriveKeyId(id, raw), id, raw],
    );
  }
  const config = {
    KAFKA_BROKERS: stackEnv().brokers,
    ...principalEnv(servicePrincipal("dedup")),
    DATABASE_URL: db.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn" as const,
    DEDUP_GRADING_AUTHORITIES: "",
    DEDUP_CONFIRMATIONS: 2,
    DEDUP_PHOTODNA_THRESHOLD: 1800,
    DEDUP_MAX_SUBMISSION_AGE_DAYS: 30,
    CONSUMER_MAX_BATCH_BYTES: 32_768,
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
  };
  for (let i = 0; i < instances; i++) {
    const instance: RunningDedup = await startDedup(config);
    cleanups.push(() => instance.stop()); // each at once: a later start that fails must not leave it running
  }
  for (let i = 0; i < subs.length; i += 200) {
    await producer.send({
      topic: names.submitted,
      acks: -1,
      messages: subs
        .slice(i, i + 200)
        .map((s) => ({ key: `${s.hashes[0]?.alg}:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
    });
  }
  await waitFor(
    "every submission processed",
    async () => {
      const { rows } = await db.pool.query<{ n: string }>(
        "SELECT ((SELECT count(*) FROM applied_submissions) + (SELECT count(*) FROM outbox WHERE topic LIKE '%rejected%'))::text AS n",
      );
      return Number(rows[0]?.n) >= subs.length;
    },
    120_000,
  );
  return canonicalState(db);
}

describe("dedup scale-out", () => {
  it("two instances in one group reach the same canonical state as one", async () => {
    const setupDb = await freshDatabase("scale-keys");
    cleanups.push(() => setupDb.drop());
    const agencies = ["force-a", "force-b", "force-c"];
    const keys = new Map<string, AgencySigner>();
    for (const id of agencies) keys.set(id, await registerTestAgency(setupDb.pool, id));
    const images = Array.from(
      { length: 250 },
      () =>
        [
          { alg: "md5", value: randomHex(16), quality: null },
          { alg: "sha1", value: randomHex(20), quality: null },
          { alg: "sha256", value: randomHex(32), quality: null },
        ] as Hash[],
    );
    const subs: Submission[] = [];
    let t = Date.now() - 60_000;
    images.forEach((hashes, i) => {
      // Partial views first (separate records until a full view bridges them), from different forces.
      subs.push(
        signedSubmission(keys.get(agencies[i % 3] as string) as AgencySigner, {
          hashes: [hashes[0] as Hash],
          grade: { uk: "B", ics: null, vics: null },
          submittedAt: t++,
        }),
      );
      subs.push(
        signedSubmission(keys.get(agencies[(i + 1) % 3] as string) as AgencySigner, {
          hashes: [hashes[1] as Hash],
          grade: { uk: i % 4 ? "B" : "C", ics: null, vics: null },
          submittedAt: t++,
        }),
      );
      if (i % 2)
        subs.push(
          signedSubmission(keys.get(agencies[(i + 2) % 3] as string) as AgencySigner, {
            hashes,
            grade: { uk: "B", ics: null, vics: null },
            submittedAt: t++,
          }),
        );
      if (i % 9 === 0)
        subs.push(
          signedSubmission(keys.get(agencies[i % 3] as string) as AgencySigner, {
            op: "RETRACT",
            hashes: [hashes[0] as Hash],
            grade: { uk: "B", ics: null, vics: null },
            submittedAt: t++,
          }),
        );
    });
    const one = await run(1, subs, agencies, keys);
    const two = await run(2, subs, agencies, keys);
    expect(one.length).toBeGreaterThan(images.length); // unbridged partial views stay separate records
    expect(two).toEqual(one);
  }, 300_000);
});
