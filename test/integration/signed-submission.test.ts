/**
 * Foundation end to end: an agency registered in the real PostgreSQL key registry signs a
 * Submission, it travels through the real Kafka broker, and the reader verifies it against
 * the registry. Also checks topic provisioning landed the settings DESIGN.md relies on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { registerAgency } from "../../services/admin/registry.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { SignatureError } from "../../services/shared/errors.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import { PgKeyRegistry, verifySignedRecord } from "../../services/shared/key-registry.ts";
import { deriveKeyId, generateSigningKeyPair, privateKeyFromPem, signRecord } from "../../services/shared/wire/signing.ts";
import type { Submission } from "../../services/shared/wire/records.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { unsignedSubmission } from "../support/fixtures.ts";
import { freshDatabase, freshTopics, kafkaAs, uniqueName } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const codec = new AvroCodec();
let db: TestDatabase;
let names: TopicNames;
let kafka: Kafka;

beforeAll(async () => {
  db = await freshDatabase("signed");
  ({ names } = await freshTopics());
  kafka = kafkaAs("test-signed-submission");
});

afterAll(async () => {
  await db?.drop();
});

async function readBack(topic: string, count: number): Promise<Buffer[]> {
  const consumer = kafka.consumer({ groupId: uniqueName("g") });
  const values: Buffer[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${values.length}/${count} records arrived`)), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value) values.push(message.value);
        if (values.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return values;
}

describe("a signed submission through the real broker", () => {
  it("arrives intact and verifies against the PostgreSQL key registry; a revoked key then fails", async () => {
    const registry = new PgKeyRegistry(db.pool, 0);
    await registerAgency(db.pool, { agencyId: "force-a", name: "Synthetic Force A", kind: "force", gradingAuthority: false });
    const pair = generateSigningKeyPair();
    const keyId = deriveKeyId("force-a", pair.publicKey);
    await registry.registerKey({
      keyId,
      ownerKind: "agency",
      ownerId: "force-a",
      publicKey: pair.publicKey,
      validFrom: new Date(Date.now() - 60_000),
      validUntil: null,
    });

    const sent = signRecord(
      "Submission",
      codec.schema("Submission").type,
      unsignedSubmission({ agencyId: "force-a", keyId }),
      privateKeyFromPem(pair.privateKeyPem),
    );
    const producer = createDurableProducer(kafka);
    await producer.connect();
    await producer.send({
      topic: names.submitted,
      acks: -1,
      messages: [{ key: sent.hashes[0]?.value ?? null, value: codec.encode("Submission", sent) }],
    });
    await producer.disconnect();

    const [bytes] = await readBack(names.submitted, 1);
    if (!bytes) throw new Error("nothing read back");
    const { value: received, writer } = codec.decode("Submission", bytes);
    expect(received).toEqual(sent);
    const expected = { ownerKind: "agency" as const, ownerId: received.agencyId, at: new Date() };
    const key = await verifySignedRecord("Submission", writer.type, received, registry, expected);
    expect(key.keyId).toBe(keyId);

    const tampered: Submission = { ...received, gradingStatus: "confirmed" };
    await expect(verifySignedRecord("Submission", writer.type, tampered, registry, expected)).rejects.toMatchObject({
      reason: "BAD_SIGNATURE",
    });

    await registry.revokeKey(keyId, "test: key compromised", new Date(Date.now() - 1000));
    const err = await verifySignedRecord("Submission", writer.type, received, registry, expected).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignatureError);
    expect((err as SignatureError).reason).toBe("KEY_REVOKED");
  });

  it("provisions the canonical topic compacted and the others with explicit retention", async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [names.canonical, names.submitted, names.rejected, names.audit].map((name) => ({ type: 2, name })),
      });
      const config = (topic: string, key: string) =>
        described.resources.find((r) => r.resourceName === topic)?.configEntries.find((e) => e.configName === key)?.configValue;
      expect(config(names.canonical, "cleanup.policy")).toBe("compact");
      expect(config(names.submitted, "cleanup.policy")).toBe("delete");
      expect(Number(config(names.submitted, "retention.ms"))).toBe(30 * 86_400_000);
      expect(Number(config(names.rejected, "retention.ms"))).toBe(90 * 86_400_000);
      const meta = await admin.fetchTopicMetadata({ topics: [names.submitted] });
      expect(meta.topics[0]?.partitions.length).toBe(3);
    } finally {
      await admin.disconnect();
    }
  });
});
