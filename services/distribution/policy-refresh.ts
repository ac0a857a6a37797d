/**
 * The partner policies distribution acts on, kept current: each refresh re-reads them, provisions
 * the feed topics of Kafka-delivered partners, and reconciles every partner's feed whose policy
 * version is not the one last applied to it. A suspended partner drops out of the policies at once,
 * so nothing more is planned or exported for it.
 */
import type { Admin } from "kafkajs";
import { ConfigError } from "../shared/errors.ts";
import { provisionTopics } from "../shared/kafka.ts";
import type { Logger } from "../shared/logging.ts";
import type { Queryable } from "../shared/postgres.ts";
import { LOCAL_TOPIC_PLAN, defaultMinInsyncReplicas, feedTopicSpec } from "../shared/topics.ts";
import type { TopicNames, TopicPlanOptions } from "../shared/topics.ts";
import type { PartnerPolicy } from "./policy.ts";
import { activePolicyVersions, loadPolicies, policyVersionsKey } from "./policy-store.ts";
import { appliedPolicyVersions } from "./store.ts";

/**
 * Feed topics' replication: min.insync.replicas defaults to defaultMinInsyncReplicas and may not
 * exceed the replication factor (the broker would refuse every write to such a topic).
 */
export function feedTopicPlan(replicationFactor: number, minInsyncReplicas: number | undefined): TopicPlanOptions {
  const minInsync = minInsyncReplicas ?? defaultMinInsyncReplicas(replicationFactor);
  if (minInsync > replicationFactor) {
    throw new ConfigError(`DISTRIBUTION_FEED_MIN_INSYNC_REPLICAS ${minInsync} exceeds DISTRIBUTION_FEED_REPLICATION ${replicationFactor}`);
  }
  return { ...LOCAL_TOPIC_PLAN, replicationFactor, minInsyncReplicas: minInsync };
}

export interface PolicyRefreshOptions {
  readonly db: Queryable;
  readonly admin: Admin;
  readonly topics: TopicNames;
  /** Replication of feed topics; each partner's policy gives its partition count. */
  readonly feedTopicPlan: TopicPlanOptions;
  readonly logger: Logger;
  /** Brings one partner's feed in line with its policy (processor.ts reconcilePartner); returns the records issued. */
  readonly reconcile: (policy: PartnerPolicy) => Promise<number>;
  /** After a partner's feed was reconciled: its records are in the outbox. */
  readonly onReconciled: () => void;
  /**
   * After a refresh that found a partner's policy other than the last refresh did, whether this
   * instance reconciled it or another one already had: its feed is being reissued, which this
   * instance's relay and exports carry too.
   */
  readonly onPolicyChanged?: () => void;
}

export interface PolicyRefresh {
  /** The policies of the last refresh (none before the first). */
  current(): readonly PartnerPolicy[];
  refresh(): Promise<void>;
  /**
   * The policies to plan a round with, in the round's transaction (holding the apply lock, as every
   * reconciliation slice does): the newest stored, reloaded whenever they changed, whether or not
   * any instance has reconciled them yet. A reconciliation walks the distributed records in slices,
   * one transaction each, and rounds run between them: a round planning with the older policy would
   * place its records behind the slices already done, and once the newer version is marked applied
   * nothing reconciles them again. The same holds when another instance reconciled a newer policy
   * since this one's last refresh. `stored`: the key of the stored versions as the round read them
   * under the apply lock (policy-store ACTIVE_POLICY_VERSIONS); read here when left out.
   */
  forRound(tx: Queryable, stored?: string): Promise<readonly PartnerPolicy[]>;
}

/**
 * Feed topics are provisioned when the Kafka partners or their partition counts change, and
 * otherwise at most this often (to recreate a topic deleted by hand): provisioning is a few admin
 * requests, and on every policy refresh they would be most of an idle distribution's work.
 */
const FEED_TOPIC_CHECK_MS = 60_000;

export function policyRefresh(o: PolicyRefreshOptions): PolicyRefresh {
  let policies: PartnerPolicy[] = [];
  let loadedOnce = false;
  let provisioned = { specs: "", at: 0 };
  // The versions of `policies` (policyVersionsKey), which a round compares with the stored ones.
  let versions = "";
  /** Feed topics of Kafka-delivered partners: created or checked when their set changed, or `recheck` is due. */
  const provisionFeedTopics = async (loaded: readonly PartnerPolicy[], recheck: boolean) => {
    const specs = loaded
      .filter((p) => p.delivery !== "s3")
      .map((p) => feedTopicSpec(p.partnerId, { ...o.feedTopicPlan, partitions: p.feedPartitions }, o.topics));
    const key = JSON.stringify(specs);
    if (specs.length && (key !== provisioned.specs || (recheck && Date.now() - provisioned.at >= FEED_TOPIC_CHECK_MS))) {
      await provisionTopics(o.admin, specs);
      provisioned = { specs: key, at: Date.now() };
    }
  };
  /** Acts on `loaded` from now on; true when a partner's version is not the one acted on before. */
  const adopt = (loaded: PartnerPolicy[]): boolean => {
    for (const gone of policies.filter((p) => !loaded.some((l) => l.partnerId === p.partnerId))) {
      o.logger.warn({ partnerId: gone.partnerId }, "partner feed stopped: policy suspended");
    }
    const before = new Map(policies.map((p) => [p.partnerId, p.version]));
    const changed = loadedOnce && loaded.some((p) => before.get(p.partnerId) !== p.version);
    policies = loaded;
    versions = policyVersionsKey(loaded);
    return changed;
  };
  return {
    current: () => policies,
    async forRound(tx, stored) {
      if ((stored ?? (await activePolicyVersions(tx))) === versions) return policies;
      const loaded = await loadPolicies(tx);
      // A partner's first records may be planned here, before any refresh: its topic comes first.
      await provisionFeedTopics(loaded, false);
      if (adopt(loaded)) o.onPolicyChanged?.();
      return policies;
    },
    async refresh() {
      const loaded = await loadPolicies(o.db);
      const applied = await appliedPolicyVersions(o.db);
      await provisionFeedTopics(loaded, true);
      const changed = adopt(loaded);
      loadedOnce = true;
      for (const p of loaded) {
        if (applied.get(p.partnerId) === p.version) continue;
        const started = performance.now();
        const issued = await o.reconcile(p);
        const ms = Math.round(performance.now() - started);
        o.logger.info({ partnerId: p.partnerId, version: p.version, issued, ms }, "partner feed reconciled with its policy");
        o.onReconciled();
      }
      if (changed) o.onPolicyChanged?.();
    },
  };
}

/**
 * Refreshes every `everyMs` (DISTRIBUTION_POLICY_REFRESH_MS); a failed refresh is logged and tried
 * again next time. A tick that comes while a refresh is still in hand is skipped: a reconciliation
 * over every record can outlast the interval, and a second refresh would reconcile the same version
 * again beside it, doubling its work and memory.
 */
export function schedulePolicyRefresh(refresh: () => Promise<void>, everyMs: number, logger: Logger): NodeJS.Timeout {
  let inHand = false;
  return setInterval(() => {
    if (inHand) return;
    inHand = true;
    refresh()
      .catch((err: unknown) => logger.error({ err }, "policy refresh failed"))
      .finally(() => {
        inHand = false;
      });
  }, everyMs);
}
