/**
 * The hub side of `make demo`: fresh databases for the hub and each partner, synthetic agencies with
 * fresh Ed25519 keys (private keys written with mode 0600 under the run's work directory), partners
 * with their policies, and the namespace's topics and ACLs.
 */
import { join } from "node:path";
import type { Kafka } from "kafkajs";
import pg from "pg";
import { registerAgency, registerPartner } from "../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../services/distribution/main.ts";
import type { PartnerPolicy } from "../services/distribution/policy.ts";
import { setPolicy } from "../services/distribution/policy-store.ts";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { clusterTopicPlan, createKafka, kafkaConnection, provisionTopics } from "../services/shared/kafka.ts";
import { accessPlan, applyAccessPlan } from "../services/shared/kafka-access.ts";
import { ADMIN_MIGRATIONS } from "../services/admin/audit-outbox.ts";
import { SHARED_MIGRATIONS, createPool, migrate } from "../services/shared/postgres.ts";
import type { Pool } from "../services/shared/postgres.ts";
import { privateKeyFromPem } from "../services/shared/wire/signing.ts";
import type { GeneratedKeyPair } from "../services/shared/wire/signing.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs } from "../services/shared/topics.ts";
import { adminCredentials, brokerSettings, info, names, namespace, need, stamp, step, workDir } from "./context.ts";
import { hotlinePolicy, industryPolicy, taskforcePolicy } from "../test/support/fixtures.ts";
import { registerFreshKey } from "../test/support/keys.ts";

async function createDatabase(name: string): Promise<string> {
  const base = new URL(need("DATABASE_URL"));
  const c = new pg.Client({ connectionString: base.toString() });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  base.pathname = `/${name}`;
  return base.toString();
}

export interface Databases {
  hubUrl: string;
  partnerUrls: Record<string, string>;
  hub: Pool;
}

export async function createDatabases(): Promise<Databases> {
  step("Creating the hub database and the partners' own databases");
  const hubUrl = await createDatabase(`demo_hub_${stamp}`);
  const partnerUrls: Record<string, string> = {
    "hotline-uk": await createDatabase(`demo_hotline_uk_${stamp}`),
    "industry-x": await createDatabase(`demo_industry_x_${stamp}`),
  };
  const hub = createPool(hubUrl, { max: 4, applicationName: "hashrelay-demo" });
  await migrate(hub, [
    { namespace: "shared", dir: SHARED_MIGRATIONS },
    ADMIN_MIGRATIONS,
    { namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS },
  ]);
  info(`hub ${hubUrl.replace(/\/\/[^@]*@/, "//")}`);
  return { hubUrl, partnerUrls, hub };
}

export interface Keys {
  signers: Record<string, AgencySigner>;
  hubKeyId: string;
  hubKeyFile: string;
  hubPair: GeneratedKeyPair;
}

export async function registerAgencies(hub: Pool): Promise<Keys> {
  step("Registering agencies (three forces and the NCA as grading authority) with fresh Ed25519 keys");
  const signers: Record<string, AgencySigner> = {};
  const agencies = [
    { id: "met-police", name: "Synthetic Metropolitan force", kind: "force" as const },
    { id: "west-midlands", name: "Synthetic West Midlands force", kind: "force" as const },
    { id: "greater-manchester", name: "Synthetic Greater Manchester force", kind: "force" as const },
    { id: "nca", name: "Synthetic National Crime Agency", kind: "nca" as const },
  ];
  for (const a of agencies) {
    await registerAgency(hub, { agencyId: a.id, name: a.name, kind: a.kind, gradingAuthority: a.id === "nca" });
    const key = await registerFreshKey(hub, "agency", a.id, { file: join(workDir, "keys", `${a.id}.pem`) });
    signers[a.id] = { agencyId: a.id, keyId: key.keyId, privateKey: privateKeyFromPem(key.privateKeyPem) };
    info(`${a.id}: key ${key.keyId}`);
  }
  const hubKeyFile = join(workDir, "keys", "hub.pem");
  const hubPair = await registerFreshKey(hub, "hub", "hub", { file: hubKeyFile });
  info(`hub: key ${hubPair.keyId}`);
  return { signers, hubKeyId: hubPair.keyId, hubKeyFile, hubPair };
}

export async function registerPartners(hub: Pool): Promise<Omit<PartnerPolicy, "version">[]> {
  step("Registering partners and their policies");
  const policies: Omit<PartnerPolicy, "version">[] = [
    // The hotline stops receiving a record while a partner's false-positive report is under review.
    hotlinePolicy("hotline-uk", { withholdUnderReview: true }),
    industryPolicy("industry-x", { feedPartitions: 3 }),
    taskforcePolicy("taskforce"),
  ];
  for (const p of policies) {
    await registerPartner(hub, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
    await setPolicy(hub, p);
    info(
      `${p.partnerId}: ${p.categories.join("/")} >= ${p.minGradingStatus}, ` +
        `${p.scheme} scheme, ${p.algorithms.join("+")}, via ${p.delivery}${p.withholdUnderReview ? ", withholds under review" : ""}`,
    );
  }
  return policies;
}

/** Provisions the namespace's topics and ACLs; returns the demo's own (admin) Kafka client. */
export async function provisionKafka(policies: Omit<PartnerPolicy, "version">[]): Promise<Kafka> {
  step("Provisioning topics and their ACLs");
  // The demo itself acts as the hub's operator (the admin principal, a super user): it provisions
  // topics and ACLs and watches the consumers. Every service runs as its own principal.
  const kafka = createKafka({ ...kafkaConnection({ ...brokerSettings(), ...adminCredentials() }), clientId: "hashrelay-demo" });
  const admin = kafka.admin();
  await admin.connect();
  await provisionTopics(admin, coreTopicSpecs(await clusterTopicPlan(admin, LOCAL_TOPIC_PLAN.partitions), names));
  // What `bin/hashrelay access apply` grants in this namespace: the hub services, and the partners
  // (their local principals come with `make up`); the agencies submit over HTTP, not to Kafka.
  const kafkaPartners = policies.filter((p) => p.delivery === "kafka").map((p) => p.partnerId);
  const grants = await applyAccessPlan(admin, accessPlan({ names, namespace, partners: kafkaPartners, agencies: [] }));
  await admin.disconnect();
  info(`${names.submitted}, ${names.rejected}, ${names.canonical} (compacted), ${names.audit}; feed topics come with distribution`);
  info(
    `${grants} ACLs: ingest, dedup and distribution to their topics, ${kafkaPartners.join(" and ")} each to its own feed and feedback topic`,
  );
  return kafka;
}
