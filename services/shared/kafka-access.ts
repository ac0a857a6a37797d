/**
 * Who may touch which topic: the Kafka principals of the hub services, partners and agencies, and
 * the ACLs each one gets. The broker denies everything not granted here (no
 * allow.everyone.if.no.acl.found), so a partner's credentials reach its own feed and nothing else.
 */
import kafkajs from "kafkajs";
import type { Admin, AclEntry } from "kafkajs";

// kafkajs is CommonJS and Node's ESM loader cannot see these names as named exports.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
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
export function consumerGroups(namespace = ""): { dedup: string; distribution: string; sink(partnerId: string): string } {
  const p = namespace ? `${namespace}.` : "";
  return {
    dedup: `${p}hashrelay-dedup`,
    distribution: `${p}hashrelay-distribution`,
    sink: (partnerId) => `${p}partner-sink.${checkedId("partner", partnerId)}`,
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

function groupAccess(principal: string, name: string): AccessGrant {
  return { principal: principal, resource: "group", name, pattern: "literal", operation: "READ" };
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
        ...deadLetterAndAudit,
      ];
    }
  }
}

/** A partner reads its own feed topic through its own consumer group; nothing else. */
export function partnerGrants(partnerId: string, names: TopicNames, namespace: string): AccessGrant[] {
  const principal = partnerPrincipal(partnerId);
  return [...topicAccess(principal, names.feed(partnerId), CONSUME), groupAccess(principal, consumerGroups(namespace).sink(partnerId))];
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

/** Creates the grants on the broker (creating an ACL that exists is a no-op there). */
export async function applyAccessPlan(admin: Admin, grants: readonly AccessGrant[]): Promise<number> {
  if (grants.length) await admin.createAcls({ acl: grants.map(toAclEntry) });
  return grants.length;
}

/** Withdraws every ACL a principal holds, e.g. when a partner is offboarded or its credentials leak. */
export async function revokePrincipalAccess(admin: Admin, principal: string): Promise<number> {
  const { filterResponses } = await admin.deleteAcls({
    filters: [
      {
        principal: `User:${principal}`,
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
        host: "*",
      },
    ],
  });
  return filterResponses.reduce((n, r) => n + r.matchingAcls.length, 0);
}
