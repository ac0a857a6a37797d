/**
 * Agency key lifecycle through dedup on the real stack: a rotated-out key still verifies inside
 * its window, the new key verifies, a revoked key's later submissions are rejected, and the
 * report lists the records that rested on the revoked key alone.
 */
import { servicePrincipal } from "../../services/shared/kafka-access.ts";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordsAssertedOnlyByKey } from "../../services/dedup/key-report.ts";
import { startDedup } from "../../services/dedup/main.ts";
import type { RunningDedup } from "../../services/dedup/main.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { PgKeyRegistry } from "../../services/shared/key-registry.ts";
import type { Rejection, Submission } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { addTestKey, registerTestAgency, signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { waitFor } from "../support/processes.ts";
import { freshDatabase, freshTopics, kafkaAs, principalEnv, stackEnv } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
let db: TestDatabase;
let names: TopicNames;
let dedup: RunningDedup;
let producer: RecordProducer;

beforeAll(async () => {
  db = await freshDatabase("keys");
  let namespace: string;
  ({ names, namespace } = await freshTopics());
  dedup = await startDedup({
    KAFKA_BROKERS: stackEnv().brokers,
    ...principalEnv(servicePrincipal("dedup")),
    DATABASE_URL: db.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn",
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
  });
  producer = createDurableProducer(kafkaAs("test-keys"));
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await dedup?.stop();
  await db?.drop();
});

const md5 = () => ({ alg: "md5" as const, value: randomHex(16), quality: null });
async function publish(subs: Submission[]) {
  await producer.send({
    topic: names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: s.hashes[0]?.value ?? null, value: codec.encode("Submission", s) })),
  });
}
const applied = async (ids: string[]) =>
  Number(
    (await db.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM applied_submissions WHERE submission_id = ANY($1)", [ids])).rows[0]
      ?.n,
  );

describe("agency key lifecycle", () => {
  it("rotates, revokes and reports", async () => {
    const oldKey = await registerTestAgency(db.pool, "force-a", { validUntil: new Date(Date.now() + 3_600_000) });
    const newKey = await addTestKey(db.pool, "force-a");
    const other = await registerTestAgency(db.pool, "force-b");

    // During the overlap both keys verify.
    const onlyOld = signedSubmission(oldKey, { hashes: [md5()] });
    const shared = md5();
    const sharedOld = signedSubmission(oldKey, { hashes: [shared] });
    const sharedOther = signedSubmission(other, { hashes: [shared] });
    const withNew = signedSubmission(newKey, { hashes: [md5()] });
    await publish([onlyOld, sharedOld, sharedOther, withNew]);
    await waitFor(
      "all four applied",
      async () => (await applied([onlyOld, sharedOld, sharedOther, withNew].map((s) => s.submissionId))) === 4,
    );

    // The old key is compromised: revoke it.
    await new PgKeyRegistry(db.pool).revokeKey(oldKey.keyId, "test: compromised", new Date(Date.now() - 1000));
    await new Promise((r) => setTimeout(r, 2_100)); // dedup caches keys for 2 s
    const afterRevoke = signedSubmission(oldKey, { hashes: [md5()] });
    const stillFine = signedSubmission(newKey, { hashes: [md5()] });
    await publish([afterRevoke, stillFine]);
    await waitFor("new-key submission applied", async () => (await applied([stillFine.submissionId])) === 1);
    const rejections = await readTopic(kafkaAs("test-keys-reader"), names.rejected, (ms) =>
      ms.some((m) => codec.decode("Rejection", m.value).value.submissionId === afterRevoke.submissionId),
    );
    const rejection: Rejection | undefined = rejections
      .map((m) => codec.decode("Rejection", m.value).value)
      .find((r) => r.submissionId === afterRevoke.submissionId);
    expect(rejection?.reason).toBe("KEY_REVOKED");

    // Only the record asserted by the old key alone is reported; the shared one also rests on force-b.
    const report = await recordsAssertedOnlyByKey(db.pool, oldKey.keyId);
    const { rows } = await db.pool.query<{ record_id: string }>("SELECT record_id FROM applied_submissions WHERE submission_id = $1", [
      onlyOld.submissionId,
    ]);
    expect(report.map((r) => r.recordId)).toEqual([rows[0]?.record_id]);
    expect(report[0]?.agencies).toEqual(["force-a"]);
  });

  it("verifies what a rotated-out key signed inside its window, after the window has closed", async () => {
    const hour = 3_600_000;
    const rotatedOut = await addTestKey(db.pool, "force-a", {
      validFrom: new Date(Date.now() - 3 * hour),
      validUntil: new Date(Date.now() - hour),
    });
    // Signed while the key was valid, reaching dedup after it expired (a lagging or re-driven submission).
    const inWindow = signedSubmission(rotatedOut, { hashes: [md5()], submittedAt: Date.now() - 2 * hour });
    const afterWindow = signedSubmission(rotatedOut, { hashes: [md5()], submittedAt: Date.now() - hour / 2 });
    await publish([inWindow, afterWindow]);
    await waitFor("the in-window submission applied", async () => (await applied([inWindow.submissionId])) === 1);
    const rejections = await readTopic(kafkaAs("test-keys-window"), names.rejected, (ms) =>
      ms.some((m) => codec.decode("Rejection", m.value).value.submissionId === afterWindow.submissionId),
    );
    const rejection = rejections
      .map((m) => codec.decode("Rejection", m.value).value)
      .find((r) => r.submissionId === afterWindow.submissionId);
    expect(rejection?.reason).toBe("KEY_EXPIRED");
    expect(await applied([afterWindow.submissionId])).toBe(0);
  });
});
