/**
 * The chaos run's S3 export check (test/chaos/reconcile-exports.ts) against exports that carry on
 * while it reads (PostgreSQL, S3; the feed topic given as bytes): in the chaos run every
 * distribution instance keeps exporting on its timer through the reconciliation. A delta and a
 * snapshot written between the check's reads must not look like a loss: a record the check found
 * neither in a listed delta nor in feed_log, or a latest-snapshot pointer naming a manifest it did
 * not list, would be its own misreading, not the exporter's.
 */
import { randomBytes } from "node:crypto";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportDelta, exportSnapshot } from "../../services/distribution/exports.ts";
import type { ExportDeps } from "../../services/distribution/exports.ts";
import { DISTRIBUTION_MIGRATIONS } from "../../services/distribution/main.ts";
import { migrate } from "../../services/shared/postgres.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import { feedsPrefix } from "../../services/shared/wire/snapshot-manifest.ts";
import { generateSigningKeyPair, privateKeyFromPem } from "../../services/shared/wire/signing.ts";
import { checkExports } from "../chaos/reconcile-exports.ts";
import type { ExportsHub } from "../chaos/reconcile-exports.ts";
import { industryPolicy, sampleFeedRecord } from "../support/fixtures.ts";
import { freshDatabase, stackEnv, stackS3Client, uniqueName } from "../support/stack.ts";
import type { TestDatabase } from "../support/stack.ts";

const env = stackEnv();
const s3 = stackS3Client(env.s3);
const codec = new AvroCodec();
const keys = generateSigningKeyPair();
const privateKey = privateKeyFromPem(keys.privateKeyPem);
const namespace = uniqueName("chk");
const partnerId = "chk-x";
/** Records per feed partition: the first half already in a delta, the second waiting for the next. */
const PER_PARTITION = 40;
let hubDb: TestDatabase;

beforeAll(async () => {
  hubDb = await freshDatabase("chk_hub");
  await migrate(hubDb.pool, [{ namespace: "distribution", dir: DISTRIBUTION_MIGRATIONS }]);
});

afterAll(async () => {
  await hubDb?.drop();
});

function exportDeps(): ExportDeps {
  return {
    pool: hubDb.pool,
    s3,
    bucket: env.s3.bucket,
    hub: { keyId: "hub:chk", privateKey, pseudonymSecret: "chk-secret-0123456789abcdef" },
    prefix: feedsPrefix(namespace),
  };
}

/** Encoded feed records of partitions 0 and 1, seq 1 to PER_PARTITION each. */
function feedRecords(): { partition: number; seq: number; bytes: Buffer }[] {
  return [0, 1].flatMap((partition) =>
    Array.from({ length: PER_PARTITION }, (_, i) => {
      const seq = i + 1;
      return { partition, seq, bytes: codec.encode("FeedRecord", { ...sampleFeedRecord(), partnerId, partition, seq }) };
    }),
  );
}

async function logRecords(rows: readonly { partition: number; seq: number; bytes: Buffer }[]): Promise<void> {
  await hubDb.pool.query(
    "INSERT INTO feed_log (partner_id, partition, seq, body) SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bytea[])",
    [partnerId, rows.map((r) => r.partition), rows.map((r) => r.seq), rows.map((r) => r.bytes)],
  );
}

/** The stack's S3 client, except that right after the first listing under `prefix` it runs `meanwhile` once. */
function exportingWhileListed(prefix: string, meanwhile: () => Promise<void>): S3Client {
  let fired = false;
  return new Proxy(s3, {
    get(target, property, receiver) {
      if (property !== "send") return Reflect.get(target, property, receiver);
      return async (command: Parameters<S3Client["send"]>[0]) => {
        const result = await target.send(command);
        if (!fired && command instanceof ListObjectsV2Command && command.input.Prefix?.startsWith(prefix)) {
          fired = true;
          await meanwhile();
        }
        return result;
      };
    },
  });
}

describe("the chaos run's S3 export check", () => {
  it("finds nothing missing when a delta and a snapshot are written while it reads", async () => {
    const records = feedRecords();
    const half = (r: { seq: number }) => r.seq <= PER_PARTITION / 2;
    await hubDb.pool.query(
      `INSERT INTO feed_partitions (partner_id, partition, last_seq, last_digest)
       SELECT $1, p, $2, $3 FROM unnest(ARRAY[0, 1]) AS p`,
      [partnerId, PER_PARTITION, randomBytes(32)],
    );
    await logRecords(records.filter(half));
    expect(await exportDelta(exportDeps(), partnerId, new Date(Date.UTC(2030, 0, 1)))).not.toBeNull();
    await exportSnapshot(exportDeps(), partnerId, new Date(Date.UTC(2030, 0, 1)));
    await logRecords(records.filter((r) => !half(r)));

    let exportedMeanwhile = 0;
    const store = {
      bucket: env.s3.bucket,
      s3: exportingWhileListed(`${feedsPrefix(namespace)}/${partnerId}/`, async () => {
        // What another distribution instance's timer does at any moment: the waiting half goes out.
        exportedMeanwhile = (await exportDelta(exportDeps(), partnerId))?.count ?? 0;
        await exportSnapshot(exportDeps(), partnerId);
      }),
    };
    const hub: ExportsHub = {
      hub: hubDb.pool,
      hubKey: { keyId: "hub:chk", publicKey: keys.publicKey, privateKey, file: "" },
      namespace,
      policies: [industryPolicy(partnerId, { delivery: "both" })],
    };
    const differences: Record<string, readonly string[]> = {};
    const figures: Record<string, number> = {};
    await checkExports(
      hub,
      store,
      async () => records.map((r) => r.bytes),
      figures,
      (check, items) => {
        differences[check] = items;
      },
    );

    expect(exportedMeanwhile).toBe(PER_PARTITION);
    expect(Object.keys(differences).length).toBeGreaterThan(0);
    expect(Object.entries(differences).filter(([, items]) => items.length > 0)).toEqual([]);
    // What the check saw: the first delta listed, the second half still waiting in feed_log.
    expect(figures[`${partnerId} records in S3 deltas`]).toBe(PER_PARTITION);
    expect(figures[`${partnerId} records waiting for the next delta`]).toBe(PER_PARTITION);
    expect(figures[`${partnerId} S3 exports written while this check read`]).toBe(2);
    expect(figures[`${partnerId} records in deltas written while this check read`]).toBe(PER_PARTITION);
  });
});
