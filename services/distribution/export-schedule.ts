/**
 * S3 delivery on a schedule: every round, each partner with S3 delivery gets a delta of the feed
 * records issued since its last one, and on the first round and every Nth after it
 * (DISTRIBUTION_SNAPSHOT_EVERY) a full snapshot. Snapshots of Kafka-delivered feeds name the topic
 * offsets they cover (exports.ts), read from the broker through the admin client.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import type { Admin } from "kafkajs";
import { DISTRIBUTION_EXPORT_LOCK } from "../shared/advisory-locks.ts";
import type { Logger } from "../shared/logging.ts";
import type { Pool } from "../shared/postgres.ts";
import type { TopicNames } from "../shared/topics.ts";
import { exportDelta, exportSnapshot } from "./exports.ts";
import type { ExportDeps } from "./exports.ts";
import type { HubSigner } from "./feed-writer.ts";
import type { PartnerPolicy } from "./policy.ts";
import { feedsPrefix } from "../shared/wire/snapshot-manifest.ts";

/** Where and how distribution writes S3 feeds: under "[<namespace>/]feeds/<partner>/". */
export function feedExportDeps(o: {
  pool: Pool;
  s3: S3Client;
  bucket: string;
  hub: HubSigner;
  namespace: string;
  topics: TopicNames;
  admin: Admin;
}): ExportDeps {
  return {
    pool: o.pool,
    s3: o.s3,
    bucket: o.bucket,
    hub: o.hub,
    prefix: feedsPrefix(o.namespace),
    feedOffsets: {
      topic: (partnerId: string) => o.topics.feed(partnerId),
      highWatermarks: async (topic: string) =>
        Object.fromEntries((await o.admin.fetchTopicOffsets(topic)).map((x) => [String(x.partition), x.high])),
    },
  };
}

/** Resolves true once the round is done, false when another instance was exporting (this round is skipped). */
export type ExportNow = (options?: { snapshots?: boolean }) => Promise<boolean>;

/**
 * One export round over the current policies; `snapshots: true` takes a snapshot whatever the round.
 * A round holds DISTRIBUTION_EXPORT_LOCK on a session of its own, so the instances of one hub export
 * one at a time: none writes a snapshot or the latest-snapshot pointer while another does, and the
 * one that finds the lock taken skips its round (the exporting one covers the same records). Each
 * instance counts its own rounds for `snapshotEvery`.
 */
export function s3Exports(o: {
  deps: ExportDeps;
  snapshotEvery: number;
  policies: () => readonly PartnerPolicy[];
  logger: Logger;
}): ExportNow {
  let round = 0;
  return async (options = {}) => {
    const session = await o.deps.pool.connect();
    let held = false;
    let broken = false;
    try {
      const { rows } = await session.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [DISTRIBUTION_EXPORT_LOCK]);
      held = rows[0]?.ok === true;
      if (!held) {
        o.logger.debug("another instance is exporting to S3; round skipped");
        return false;
      }
      round++;
      for (const p of o.policies().filter((x) => x.delivery !== "kafka")) {
        const delta = await exportDelta(o.deps, p.partnerId);
        // An S3-only partner has no topic whose offsets a snapshot could name.
        const snapshotDeps = p.delivery === "s3" ? { ...o.deps, feedOffsets: undefined } : o.deps;
        const snapshot = options.snapshots || (round - 1) % o.snapshotEvery === 0 ? await exportSnapshot(snapshotDeps, p.partnerId) : null;
        o.logger.info({ partnerId: p.partnerId, delta: delta?.object ?? null, snapshot: snapshot?.object ?? null }, "S3 feed exported");
      }
      return true;
    } catch (err) {
      broken = true;
      throw err;
    } finally {
      if (held) await session.query("SELECT pg_advisory_unlock($1)", [DISTRIBUTION_EXPORT_LOCK]).catch(() => (broken = true));
      // A session that failed is closed, not reused: that also drops the lock if it was still held.
      session.release(broken);
    }
  };
}

/** Runs a round every `everyMs` (DISTRIBUTION_EXPORT_INTERVAL_MS); 0 schedules nothing (null). */
export function scheduleExports(exportNow: ExportNow, everyMs: number, logger: Logger): NodeJS.Timeout | null {
  if (everyMs <= 0) return null;
  return setInterval(() => {
    exportNow().catch((err: unknown) => logger.error({ err }, "S3 export failed"));
  }, everyMs);
}
