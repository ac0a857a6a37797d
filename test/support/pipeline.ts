/**
 * The whole hub in one process for cross-service tests: fresh hub database and topic namespace,
 * a registered hub key, synthetic agencies, partners with policies, and running dedup,
 * distribution and partner sinks (each sink with a database of its own).
 */
import { servicePrincipal, partnerPrincipal, consumerGroups } from "../../services/shared/kafka-access.ts";
import { sinkConsumerGroup } from "../../services/partner-sink/main.ts";
import { consumerCaughtUp } from "../../services/shared/exactly-once-consumer.ts";
import { mkdtempSync } from "node:fs";
import type { Kafka } from "kafkajs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registerPartner } from "../../services/admin/registry.ts";
import { startDedup } from "../../services/dedup/main.ts";
import type { RunningDedup } from "../../services/dedup/main.ts";
import { startDistribution } from "../../services/distribution/main.ts";
import type { RunningDistribution } from "../../services/distribution/main.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { startPartnerSink } from "../../services/partner-sink/main.ts";
import type { RunningSink } from "../../services/partner-sink/main.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import type { KeyObject } from "node:crypto";
import type { TopicNames } from "../../services/shared/topics.ts";
import { registerTestAgency } from "./agencies.ts";
import { registerFreshKey } from "./keys.ts";
import { freshDatabase, freshTopics, LOCAL_PARTNERS, onboardPartner, principalEnv, stackEnv } from "./stack.ts";
import type { TestDatabase } from "./stack.ts";

export interface HubKey {
  readonly keyId: string;
  readonly publicKey: Buffer;
  readonly privateKey: KeyObject;
  readonly file: string;
}

export interface Pipeline {
  readonly hubDb: TestDatabase;
  readonly names: TopicNames;
  readonly namespace: string;
  readonly hubKey: HubKey;
  readonly agencies: Record<string, AgencySigner>;
  readonly dedup: RunningDedup;
  /** The running distribution (replaced by rotateHubKey). */
  readonly distribution: RunningDistribution;
  readonly sinks: Record<string, { sink: RunningSink; db: TestDatabase }>;
  /** Starts (or restarts) a partner's sink; `trustedHubKeys` defaults to the pipeline's hub key. */
  startSink(partnerId: string, trustedHubKeys?: HubKey[]): Promise<RunningSink>;
  /** Hub key rotation: restarts distribution signing with `next` (registered beforehand). */
  rotateHubKey(next: HubKey): Promise<void>;
  stop(): Promise<void>;
}

export type PolicySpec = Omit<PartnerPolicy, "version">;

export async function createHubKey(db: TestDatabase): Promise<HubKey> {
  const file = join(mkdtempSync(join(tmpdir(), "hashrelay-hub-")), "hub.pem");
  const key = await registerFreshKey(db.pool, "hub", "hub", { validFrom: new Date(Date.now() - 3_600_000), file });
  return { keyId: key.keyId, publicKey: key.publicKey, privateKey: privateKeyFromPem(key.privateKeyPem), file };
}

export async function startPipeline(options: {
  agencies: { id: string; authority?: boolean }[];
  policies: PolicySpec[];
  /** Distinct records a perceptual value may sit on before it is degenerate (dedup's default otherwise). */
  degeneratePerceptualRecords?: number;
  /** Which feed records distribution signs (its default otherwise). */
  feedSigning?: "every-record" | "chain";
}): Promise<Pipeline> {
  const env = stackEnv();
  const hubDb = await freshDatabase("hub");
  const kafkaPartners = options.policies.filter((p) => p.delivery !== "s3").map((p) => p.partnerId);
  const { names, namespace } = await freshTopics(kafkaPartners);
  const hubKey = await createHubKey(hubDb);
  const agencies: Record<string, AgencySigner> = {};
  for (const a of options.agencies) {
    agencies[a.id] = await registerTestAgency(hubDb.pool, a.id, {
      kind: a.id === "nca" ? "nca" : "force",
      authority: a.authority ?? false,
    });
  }
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  for (const p of options.policies) {
    await registerPartner(hubDb.pool, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
    await setPolicy(hubDb.pool, p);
  }
  const common = {
    KAFKA_BROKERS: env.brokers,
    DATABASE_URL: hubDb.url,
    TOPIC_NAMESPACE: namespace,
    LOG_LEVEL: "warn" as const,
    CONSUMER_MAX_BATCH_BYTES: 1_048_576,
    CONSUMER_SESSION_TIMEOUT_MS: 10_000,
  };
  const s3 = {
    S3_ENDPOINT: env.s3.endpoint,
    S3_REGION: env.s3.region,
    S3_ACCESS_KEY_ID: env.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    S3_BUCKET: env.s3.bucket,
  };
  const dedup = await startDedup({
    ...common,
    ...principalEnv(servicePrincipal("dedup")),
    DEDUP_GRADING_AUTHORITIES: "",
    DEDUP_CONFIRMATIONS: 2,
    DEDUP_PHOTODNA_THRESHOLD: 1800,
    DEDUP_MAX_SUBMISSION_AGE_DAYS: 30,
    ...(options.degeneratePerceptualRecords ? { DEDUP_DEGENERATE_PERCEPTUAL_RECORDS: options.degeneratePerceptualRecords } : {}),
  });
  const distributionConfig = (key: HubKey) => ({
    ...common,
    ...principalEnv(servicePrincipal("distribution")),
    ...s3,
    HUB_KEY_ID: key.keyId,
    HUB_SIGNING_KEY_FILE: key.file,
    DISTRIBUTION_PSEUDONYM_SECRET: "test-pseudonym-secret-0123456789",
    DISTRIBUTION_POLICY_REFRESH_MS: 500,
    DISTRIBUTION_EXPORT_INTERVAL_MS: 0,
    DISTRIBUTION_SNAPSHOT_EVERY: 1,
    ...(options.feedSigning ? { DISTRIBUTION_FEED_SIGNING: options.feedSigning } : {}),
  });
  let distribution = await startDistribution(distributionConfig(hubKey));
  const sinks: Pipeline["sinks"] = {};
  const startSink = async (partnerId: string, trustedHubKeys: HubKey[] = [hubKey]) => {
    await sinks[partnerId]?.sink.stop().catch(() => undefined);
    const db = sinks[partnerId]?.db ?? (await freshDatabase(`partner`));
    if (!LOCAL_PARTNERS.includes(partnerId)) await onboardPartner(partnerId, namespace);
    const sink = await startPartnerSink({
      ...common,
      ...s3,
      S3_ENDPOINT: env.s3.endpoint,
      PARTNER_ID: partnerId,
      PARTNER_DATABASE_URL: db.url,
      HUB_PUBLIC_KEYS: trustedHubKeys.map((k) => `${k.keyId}=${k.publicKey.toString("base64")}`).join(","),
      PARTNER_HTTP_HOST: "127.0.0.1",
      PARTNER_HTTP_PORT: 0,
      PARTNER_BOOTSTRAP: "s3",
      KAFKA_BROKERS: env.brokers,
      ...principalEnv(partnerPrincipal(partnerId)),
    });
    sinks[partnerId] = { sink, db };
    return sink;
  };
  for (const p of kafkaPartners) await startSink(p);
  return {
    hubDb,
    names,
    namespace,
    hubKey,
    agencies,
    dedup,
    get distribution() {
      return distribution;
    },
    sinks,
    startSink,
    async rotateHubKey(next: HubKey) {
      await distribution.stop();
      distribution = await startDistribution(distributionConfig(next));
    },
    async stop() {
      for (const { sink, db } of Object.values(sinks)) {
        await sink.stop().catch(() => undefined);
        await db.drop().catch(() => undefined);
      }
      await distribution.stop().catch(() => undefined);
      await dedup.stop().catch(() => undefined);
      await hubDb.drop().catch(() => undefined);
    },
  };
}

/** True once every stage has consumed everything before it and no outbox holds anything. */
export async function pipelineSettled(p: Pipeline, kafka: Kafka, partners: string[]): Promise<boolean> {
  const hub = p.hubDb.pool;
  const { rows } = await hub.query<{ n: string }>("SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n");
  if (Number(rows[0]?.n) > 0) return false;
  if (!(await consumerCaughtUp(kafka, hub, consumerGroups(p.namespace).dedup, p.names.submitted))) return false;
  if (!(await consumerCaughtUp(kafka, hub, consumerGroups(p.namespace).distribution, p.names.canonical))) return false;
  const again = await hub.query<{ n: string }>("SELECT ((SELECT count(*) FROM outbox) + (SELECT count(*) FROM feed_outbox))::text AS n");
  if (Number(again.rows[0]?.n) > 0) return false;
  for (const partnerId of partners) {
    const sink = p.sinks[partnerId];
    if (!sink || !(await consumerCaughtUp(kafka, sink.db.pool, sinkConsumerGroup(partnerId, p.namespace), p.names.feed(partnerId))))
      return false;
  }
  return true;
}
