/**
 * Set-up phase of the pipeline benchmark: a fresh hub database and one database per partner, the
 * hub key, one synthetic force, two partners with their policies, the namespace's topics (and the
 * raw baseline's topic, except in the import mode) and the ACLs `bin/hashrelay access apply` would
 * grant. Each resource is recorded for clean-up before it is made.
 */
import { dirname } from "node:path";
import { registerPartner } from "../../services/admin/registry.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { setPolicy } from "../../services/distribution/policy-store.ts";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import { sinkConsumerGroup } from "../../services/partner-sink/main.ts";
import { clusterTopicPlan, provisionTopics } from "../../services/shared/kafka.ts";
import { accessPlan, applyAccessPlan, consumerGroups, toAclEntry } from "../../services/shared/kafka-access.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { LOCAL_TOPIC_PLAN, coreTopicSpecs, feedTopicSpec, topicNames } from "../../services/shared/topics.ts";
import type { TopicNames } from "../../services/shared/topics.ts";
import { registerTestAgency } from "../../test/support/agencies.ts";
import { createHubKey } from "../../test/support/pipeline.ts";
import type { HubKey } from "../../test/support/pipeline.ts";
import { freshDatabase, uniqueName } from "../../test/support/stack.ts";
import type { TestDatabase } from "../../test/support/stack.ts";
import { PARTNERS } from "./context.ts";
import type { Bench } from "./context.ts";
import { log } from "./util.ts";
import { hotlinePolicy, industryPolicy } from "../../test/support/fixtures.ts";

export interface Setup {
  readonly hubDb: TestDatabase;
  readonly partnerDbs: { readonly hotline: TestDatabase; readonly industry: TestDatabase };
  readonly hubKey: HubKey;
  readonly signer: AgencySigner;
  readonly policies: Omit<PartnerPolicy, "version">[];
  readonly names: TopicNames;
  /** The raw baseline's namespace: only its submitted topic exists (none in the import mode). */
  readonly rawNames: TopicNames;
  /** hotline-uk's feed topic, then industry-x's. */
  readonly feedTopics: string[];
  readonly groupOf: { readonly dedup: string; readonly distribution: string; readonly hotline: string; readonly industry: string };
}

export async function setUp(b: Bench): Promise<Setup> {
  const { res, admin, namespace } = b;
  log("  fresh hub and partner databases, topics, hub key, one synthetic force, two partners...");
  const hubDb = await freshDatabase("bench_pipe_hub");
  res.dbs.push(hubDb);
  res.saveState();
  const partnerDbs = { hotline: await freshDatabase("bench_pipe_hotline"), industry: await freshDatabase("bench_pipe_industry") };
  res.dbs.push(partnerDbs.hotline, partnerDbs.industry);
  res.saveState();
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
  const hubKey = await createHubKey(hubDb);
  res.hubKeyDir = dirname(hubKey.file);
  res.saveState();
  const signer = await registerTestAgency(hubDb.pool, "bench-force");
  const policies: Omit<PartnerPolicy, "version">[] = [
    hotlinePolicy(PARTNERS.hotline),
    industryPolicy(PARTNERS.industry, { minGradingStatus: "indicative", algorithms: ["md5"], extraFields: [], feedPartitions: 3 }),
  ];
  for (const p of policies) {
    await registerPartner(hubDb.pool, { partnerId: p.partnerId, name: `Synthetic ${p.partnerId}` });
    await setPolicy(hubDb.pool, p);
  }
  const names = topicNames(namespace);
  const rawNames = topicNames(uniqueName("bpraw"));
  const plan = await clusterTopicPlan(admin, LOCAL_TOPIC_PLAN.partitions);
  const specs = [
    ...coreTopicSpecs(plan, names),
    ...policies.map((p) => feedTopicSpec(p.partnerId, { ...plan, partitions: p.feedPartitions }, names)),
    // the raw baseline's topic: the settings of hashes.submitted.v1 (the import mode has no baseline)
    ...(b.args.import ? [] : coreTopicSpecs(plan, rawNames).filter((s) => s.topic === rawNames.submitted)),
  ];
  res.topics.push(...specs.map((s) => s.topic));
  res.saveState();
  await provisionTopics(admin, specs);
  // What `bin/hashrelay access apply` grants in the namespace: the hub services and both partners
  // (the force submits over HTTP, or this script produces as the admin; the raw topic is admin-only).
  const grants = accessPlan({ names, namespace, partners: Object.values(PARTNERS), agencies: [] });
  res.acls.push(...grants.map(toAclEntry));
  res.saveState();
  await applyAccessPlan(admin, grants);
  const feedTopics = [names.feed(PARTNERS.hotline), names.feed(PARTNERS.industry)];
  const groupOf = {
    dedup: consumerGroups(namespace).dedup,
    distribution: consumerGroups(namespace).distribution,
    hotline: sinkConsumerGroup(PARTNERS.hotline, namespace),
    industry: sinkConsumerGroup(PARTNERS.industry, namespace),
  };
  res.groups.push(...Object.values(groupOf));
  res.saveState();
  return { hubDb, partnerDbs, hubKey, signer, policies, names, rawNames, feedTopics, groupOf };
}
