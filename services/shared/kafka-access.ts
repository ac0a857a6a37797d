/**
 * Who may touch which topic: the Kafka principals of the hub services, partners and agencies, and
 * the ACLs each one gets. The broker denies everything not granted here (no
 * allow.everyone.if.no.acl.found), so a partner's credentials reach its own feed and nothing else.
 */
// First, before kafkajs loads (see that file).
import "./kafkajs-send-messages.ts";
import kafkajs from "kafkajs";
import type { Admin, AclEntry } from "kafkajs";

// kafkajs is CommonJS and Node's ESM loader cannot see these names as named exports.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
import { HashrelayError } from "./errors.ts";
import type { TopicNames } from "./topics.ts";

/** The principal the hub's operators use to provision topics and ACLs: a broker super user. */
export const ADMIN_PRINCIPAL = "hashrelay-admin";

export type HubService = "ingest" | "dedup" | "distribution";
export const HUB_SERVICES: readonly HubService[] = ["ingest", "dedup", "distribution"];

const ID = /^[a-z0-9][a-z0-9-]{1,62}$/;

function checkedId(kind: string, id: string): string {
  if (!ID.test(id)) throw new Error(`invalid ${kind} id ${JSON.stringify(id)}`);
  return id;
}

export function servicePrincipal(service: HubService): string {
  return `hashrelay-${service}`;
}

export function partnerPrincipal(partnerId: string): string {
  return `partner-${checkedId("partner", partnerId)}`;
}

export function agencyPrincipal(agencyId: string): string {
  return `agency-${checkedId("agency", agencyId)}`;
}

/** Consumer group names, namespaced like the topics so that test pipelines stay apart. */
export function consumerGroups(namespace = ""): {
  dedup: string;
  distribution: string;
  /** What every feedback consumer group starts with: distribution's prefixed group ACL. */
  feedbackPrefix: string;
  /** Distribution's group for one partner's feedback topic (one consumer per topic). */
  feedback(partnerId: string): string;
  sink(partnerId: string): string;
  /** What every partner sink's group starts with (and nothing else's). */
  sinkPrefix: string;
} {
  const p = namespace ? `${namespace}.` : "";
  return {
    dedup: `${p}hashrelay-dedup`,
    distribution: `${p}hashrelay-distribution`,
    feedbackPrefix: `${p}hashrelay-distribution-feedback.`,
    feedback: (partnerId) => `${p}hashrelay-distribution-feedback.${checkedId("partner", partnerId)}`,
    sink: (partnerId) => `${p}partner-sink.${checkedId("partner", partnerId)}`,
    sinkPrefix: `${p}partner-sink.`,
  };
}

type Operation = "READ" | "WRITE" | "DESCRIBE" | "CREATE" | "ALTER_CONFIGS" | "DESCRIBE_CONFIGS";

/** One grant: a principal may do `operation` on a topic or consumer group (exact name or prefix). */
export interface AccessGrant {
  readonly principal: string;
  readonly resource: "topic" | "group";
  readonly name: string;
  readonly pattern: "literal" | "prefixed";
  readonly operation: Operation;
}

function topicAccess(principal: string, name: string, ops: Operation[], pattern: AccessGrant["pattern"] = "literal"): AccessGrant[] {
  return ops.map((operation) => ({ principal, resource: "topic", name, pattern, operation }));
}

function groupAccess(principal: string, name: string, pattern: AccessGrant["pattern"] = "literal"): AccessGrant {
  return { principal: principal, resource: "group", name, pattern, operation: "READ" };
}

const PRODUCE: Operation[] = ["WRITE", "DESCRIBE"];
const CONSUME: Operation[] = ["READ", "DESCRIBE"];

/** What each hub service needs, and no more: ingest writes submissions, dedup turns them into canonical records, distribution writes feeds. */
export function serviceGrants(service: HubService, names: TopicNames, namespace: string): AccessGrant[] {
  const principal = servicePrincipal(service);
  const groups = consumerGroups(namespace);
  const deadLetterAndAudit = [...topicAccess(principal, names.rejected, PRODUCE), ...topicAccess(principal, names.audit, PRODUCE)];
  switch (service) {
    case "ingest":
      return [...topicAccess(principal, names.submitted, PRODUCE), ...deadLetterAndAudit];
    case "dedup":
      return [
        ...topicAccess(principal, names.submitted, CONSUME),
        groupAccess(principal, groups.dedup),
        ...topicAccess(principal, names.canonical, PRODUCE),
        ...deadLetterAndAudit,
      ];
    case "distribution": {
      // Every feed topic, present and future: the prefix ends in "feed." so nothing else matches.
      return [
        ...topicAccess(principal, names.canonical, CONSUME),
        groupAccess(principal, groups.distribution),
        // distribution creates a partner's feed topic when the partner's policy is first applied
        ...topicAccess(principal, names.feedPrefix, [...PRODUCE, "CREATE", "ALTER_CONFIGS", "DESCRIBE_CONFIGS"], "prefixed"),
        // and reads every partner's feedback topic, which it provisions beside the feed topic
        ...topicAccess(principal, names.feedbackPrefix, [...CONSUME, "CREATE", "ALTER_CONFIGS", "DESCRIBE_CONFIGS"], "prefixed"),
        groupAccess(principal, groups.feedbackPrefix, "prefixed"),
        // reads the offsets partner sinks commit (each partner's lag, for metrics); cannot join their groups
        { principal, resource: "group", name: groups.sinkPrefix, pattern: "prefixed", operation: "DESCRIBE" },
        ...deadLetterAndAudit,
      ];
    }
  }
}

/** A partner reads its own feed topic through its own consumer group and writes its own feedback topic; nothing else. */
export function partnerGrants(partnerId: string, names: TopicNames, namespace: string): AccessGrant[] {
  const principal = partnerPrincipal(partnerId);
  return [
    ...topicAccess(principal, names.feed(partnerId), CONSUME),
    groupAccess(principal, consumerGroups(namespace).sink(partnerId)),
    ...topicAccess(principal, names.feedback(partnerId), PRODUCE),
  ];
}

/** An agency that produces straight to Kafka (a bulk system instead of the HTTP API) may only write submissions. */
export function agencyGrants(agencyId: string, names: TopicNames): AccessGrant[] {
  return topicAccess(agencyPrincipal(agencyId), names.submitted, PRODUCE);
}

export interface AccessPlanInput {
  readonly names: TopicNames;
  readonly namespace: string;
  readonly partners: readonly string[];
  readonly agencies: readonly string[];
}

/** Every grant for one topic namespace: the hub services, each partner and each agency. */
export function accessPlan(input: AccessPlanInput): AccessGrant[] {
  return [
    ...HUB_SERVICES.flatMap((s) => serviceGrants(s, input.names, input.namespace)),
    ...input.partners.flatMap((p) => partnerGrants(p, input.names, input.namespace)),
    ...input.agencies.flatMap((a) => agencyGrants(a, input.names)),
  ];
}

export function toAclEntry(g: AccessGrant): AclEntry {
  return {
    principal: `User:${g.principal}`,
    host: "*",
    resourceType: g.resource === "topic" ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
    resourceName: g.name,
    resourcePatternType: g.pattern === "literal" ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
    operation: AclOperationTypes[g.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

function aclKey(e: AclEntry): string {
  return [e.principal, e.host, e.resourceType, e.resourceName, e.resourcePatternType, e.operation, e.permissionType].join("|");
}

/**
 * Creates the grants on the broker (creating an ACL that exists is a no-op there) and waits until
 * the broker's authorizer enforces them: CreateAcls returns once the controller has committed them,
 * but a broker applies metadata asynchronously, so a client started at once could still be refused.
 */
export async function applyAccessPlan(admin: Admin, grants: readonly AccessGrant[], options: { timeoutMs?: number } = {}): Promise<number> {
  if (grants.length === 0) return 0;
  const entries = grants.map(toAclEntry);
  await admin.createAcls({ acl: entries });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const missing = await missingAcls(admin, entries);
    if (missing.length === 0) return grants.length;
    if (Date.now() > deadline) {
      throw new HashrelayError("INTERNAL", `the broker does not yet enforce ${missing.length} created ACL(s), e.g. ${missing[0]}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The entries the broker's authorizer does not hold (DescribeAcls answers from it). */
async function missingAcls(admin: Admin, entries: readonly AclEntry[]): Promise<string[]> {
  const { resources } = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
  });
  const held = new Set<string>();
  for (const r of resources) {
    for (const a of r.acls)
      held.add(aclKey({ ...a, resourceType: r.resourceType, resourceName: r.resourceName, resourcePatternType: r.resourcePatternType }));
  }
  return entries.map(aclKey).filter((k) => !held.has(k));
}

/** Withdraws every ACL a principal holds, e.g. when a partner is offboarded or its credentials leak. */
export async function revokePrincipalAccess(admin: Admin, principal: string, options: { timeoutMs?: number } = {}): Promise<number> {
  const filter = {
    principal: `User:${principal}`,
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
  };
  const { filterResponses } = await admin.deleteAcls({ filters: [{ ...filter, host: "*" }] });
  // As with grants, the broker drops them asynchronously: return once it no longer holds them.
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while ((await admin.describeAcls(filter)).resources.length > 0) {
    if (Date.now() > deadline) throw new HashrelayError("INTERNAL", `the broker still enforces ACLs of ${principal} after deleting them`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return filterResponses.reduce((n, r) => n + r.matchingAcls.length, 0);
}
