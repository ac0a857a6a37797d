/**
 * DLQ re-drive: rejections caused by a key that was not yet registered, one refused by dedup and
 * one by ingest, are sent round again once the key is registered, and both end up applied.
 */
import { servicePrincipal } from "../../services/shared/kafka-access.ts";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redrive } from "../../services/admin/redrive.ts";
import { startDedup } from "../../services/dedup/main.ts";
import type { RunningDedup } from "../../services/dedup/main.ts";
import { kafkaIntakeSink, pgSubmissionLedger } from "../../services/ingest/adapters.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { INGEST_MIGRATIONS } from "../../services/ingest/main.ts";
import { admitBatch } from "../../services/ingest/intake.ts";
import type { IntakeDeps } from "../../services/ingest/intake.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { readTopic } from "../support/kafka.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
const kafka = kafkaAs("test-redrive");
let db: TestDatabase;
let names: TopicNames;
let dedup: RunningDedup;
let producer: RecordProducer;

beforeAll(async () => {
  db = await freshDatabase("redrive");
  let namespace: string;
  ({ names, namespace } = await freshTopics());
  await migrate(db.pool, [{ namespace: "ingest", dir: INGEST_MIGRATIONS }]);
  dedup = await startDedup({
    KAFKA_BROKERS: stackEnv().brokers,
    ...principalEnv(servicePrincipal("dedup")),
    DATABASE_URL: db.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn",
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
  });
  producer = createDurableProducer(kafka);
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await dedup?.stop();
  await db?.drop();
});

describe("DLQ re-drive", () => {
  it("sends rejections round again once their cause is fixed", async () => {
    await registerTestAgency(db.pool, "force-a");
    // A second key the force started using before the hub registered it.
    const pair = generateSigningKeyPair();
    const early = { agencyId: "force-a", keyId: deriveKeyId("force-a", pair.publicKey), privateKey: privateKeyFromPem(pair.privateKeyPem) };
    const viaKafka = signedSubmission(early);
    const viaIngest = signedSubmission(early);
    await producer.send({ topic: names.submitted, acks: -1, messages: [{ key: "k", value: codec.encode("Submission", viaKafka) }] });
    const intake: IntakeDeps = {
      codec,
      keys: new PgKeyRegistry(db.pool, 0),
      ledger: pgSubmissionLedger(db.pool),
      sink: kafkaIntakeSink(producer, codec, names),
    };
    const original = Buffer.from(JSON.stringify(submissionToJson(viaIngest)));
    const [refused] = await admitBatch(intake, { agencyId: "force-a" }, "http", [{ index: 0, ok: true, submission: viaIngest, original }]);
    expect(refused?.reason).toBe("UNKNOWN_KEY");
    await readTopic(
      kafka,
      names.rejected,
      (ms) => ms.filter((m) => codec.decode("Rejection", m.value).value.reason === "UNKNOWN_KEY").length >= 2,
    );

    // Not re-drivable yet: both are refused again, nothing applied.
    const applied = async () =>
      Number(
        (
          await db.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM applied_submissions WHERE submission_id = ANY($1)", [
            [viaKafka.submissionId, viaIngest.submissionId],
          ])
        ).rows[0]?.n,
      );
    expect(await applied()).toBe(0);

    await new PgKeyRegistry(db.pool).registerKey({
      keyId: early.keyId,
      ownerKind: "agency",
      ownerId: "force-a",
      publicKey: pair.publicKey,
      validFrom: new Date(Date.now() - 60_000),
      validUntil: null,
    });
    await new Promise((r) => setTimeout(r, 2_100)); // dedup caches key look-ups for 2 s
    const report = await redrive({ kafka, codec, topics: names, intake }, { reason: "UNKNOWN_KEY" });
    expect(report).toMatchObject({ matched: 2, republished: 1, readmitted: { accepted: 1, duplicates: 0, rejected: 0 }, skipped: 0 });
    await waitFor("both applied by dedup", async () => (await applied()) === 2, 60_000);
  });
});
