/**
 * Perceptual values against the real stack (dedup, distribution, a partner sink): equal PDQ or
 * PhotoDNA values never join records, only link them as near duplicates; retractions and regrades
 * stay with the one record; degenerate values (low quality, constant, or on too many records) are
 * kept out of matching and out of every feed, a value turning degenerate reaches the partner that
 * held it as a REMOVE, and `bin/hashrelay hashes degenerate` reports them to operators.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { degenerateCounts, degenerateValues } from "../../services/dedup/degenerate-report.ts";
import { expectedHoldings, partnerHoldings, reconcile } from "../../services/distribution/reconcile.ts";
import type { PartnerPolicy } from "../../services/distribution/policy.ts";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { createDurableProducer } from "../../services/shared/kafka.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import { AvroCodec } from "../../services/shared/wire/codec.ts";
import type { CanonicalRecord, FeedRecord, Hash, Submission } from "../../services/shared/wire/records.ts";
import { signedSubmission } from "../support/agencies.ts";
import { randomHex } from "../support/fixtures.ts";
import { readTopic } from "../support/kafka.ts";
import { pipelineSettled, startPipeline } from "../support/pipeline.ts";
import type { Pipeline } from "../support/pipeline.ts";
import { waitFor } from "../support/processes.ts";
import { kafkaAs } from "../support/stack.ts";

const THRESHOLD = 4;
const PARTNER = "industry-x";
const codec = new AvroCodec();
let kafka: Kafka;
let producer: RecordProducer;
let p: Pipeline;
const policy: Omit<PartnerPolicy, "version"> = {
  partnerId: PARTNER,
  categories: ["A", "B", "C"],
  minGradingStatus: "indicative",
  algorithms: ["md5", "pdq", "photodna"],
  scheme: "uk",
  extraFields: [],
  delivery: "kafka",
  feedPartitions: 2,
};

beforeAll(async () => {
  kafka = kafkaAs("test-perceptual");
  producer = createDurableProducer(kafka);
  await producer.connect();
  p = await startPipeline({
    agencies: [{ id: "force-a" }, { id: "force-b" }, { id: "force-c" }, { id: "nca", authority: true }],
    policies: [policy],
    degeneratePerceptualRecords: THRESHOLD,
  });
}, 120_000);
afterAll(async () => {
  await p?.stop();
  await producer?.disconnect();
});

const md5 = (): Hash => ({ alg: "md5", value: randomHex(16), quality: null });
const sha1 = (): Hash => ({ alg: "sha1", value: randomHex(20), quality: null });
const pdq = (quality = 90, value = randomHex(32)): Hash => ({ alg: "pdq", value, quality });
const photodna = (byte: (i: number) => number): Hash => ({
  alg: "photodna",
  value: Buffer.from(Array.from({ length: 144 }, (_, i) => byte(i) & 0xff)).toString("base64"),
  quality: null,
});
const agency = (id: string) => {
  const a = p.agencies[id];
  if (!a) throw new Error(`no agency ${id}`);
  return a;
};

async function publish(subs: Submission[]): Promise<void> {
  await producer.send({
    topic: p.names.submitted,
    acks: -1,
    messages: subs.map((s) => ({ key: `${s.hashes[0]?.alg}:${s.hashes[0]?.value}`, value: codec.encode("Submission", s) })),
  });
}

async function latestRecords(): Promise<CanonicalRecord[]> {
  const { rows } = await p.hubDb.pool.query<{ body: Buffer }>("SELECT body FROM distributed_records");
  return rows.map((r) => codec.decode("CanonicalRecord", r.body).value);
}

/** Waits for the whole pipeline, then checks the partner holds exactly what reconciliation implies. */
async function settled(): Promise<CanonicalRecord[]> {
  await waitFor("pipeline settled", () => pipelineSettled(p, kafka, [PARTNER]), 60_000, 300);
  const records = await latestRecords();
  const sink = p.sinks[PARTNER];
  if (!sink) throw new Error("no sink");
  const report = reconcile(expectedHoldings({ ...policy, version: 1 }, records), await partnerHoldings(sink.db.pool));
  expect(report.ok, JSON.stringify(report)).toBe(true);
  return records;
}

const carrying = (records: CanonicalRecord[], h: Hash) =>
  records.filter((r) => !r.mergedInto && r.hashes.some((x) => x.alg === h.alg && x.value === h.value));
const withMd5 = (records: CanonicalRecord[], h: Hash) => records.find((r) => r.hashes.some((x) => x.value === h.value));

async function feedEntries(h: Hash): Promise<{ record_id: string }[]> {
  const { rows } = await p.hubDb.pool.query<{ record_id: string }>(
    "SELECT record_id FROM feed_entries WHERE partner_id = $1 AND alg = $2 AND value = $3",
    [PARTNER, h.alg, h.value],
  );
  return rows;
}

async function feedRecords(done: (rs: FeedRecord[]) => boolean): Promise<FeedRecord[]> {
  const ms = await readTopic(kafka, p.names.feed(PARTNER), (m) => done(m.map((x) => codec.decode("FeedRecord", x.value).value)), 30_000);
  return ms.map((x) => codec.decode("FeedRecord", x.value).value);
}

describe("perceptual values are evidence of similarity, never identity", () => {
  const shared = photodna((i) => i * 7 + 3);
  const sharedPdq = pdq();
  const files = [md5(), md5(), md5()];
  const pdqFiles = [md5(), md5(), md5()];
  // Degenerate from the start: a low-quality PDQ, an all-zero and a flat PhotoDNA.
  const [weak, zero, flat] = [pdq(30), photodna(() => 0), photodna(() => 128)];

  it("three files with different MD5s and one PhotoDNA (or one PDQ) are three live records linked as near duplicates", async () => {
    await publish([
      ...files.map((f, i) => signedSubmission(agency(i === 2 ? "force-b" : "force-a"), { hashes: [f, shared], submittedAt: Date.now() })),
      ...pdqFiles.map((f) => signedSubmission(agency("force-c"), { hashes: [f, sharedPdq], submittedAt: Date.now() })),
    ]);
    await waitFor("six records linked", async () => {
      const rs = await latestRecords();
      return [shared, sharedPdq].every((h) => carrying(rs, h).length === 3 && carrying(rs, h).every((r) => r.nearDuplicates.length === 2));
    });
    const records = await settled();
    for (const h of [shared, sharedPdq]) {
      const three = carrying(records, h);
      expect(three.every((r) => !r.deleted && r.degenerate.length === 0)).toBe(true);
      for (const r of three)
        expect(r.nearDuplicates.sort()).toEqual(
          three
            .map((x) => x.recordId)
            .filter((id) => id !== r.recordId)
            .sort(),
        );
      // One feed entry per value, held under one of the three records.
      const entries = await feedEntries(h);
      expect(entries).toHaveLength(1);
      expect(three.map((r) => r.recordId)).toContain(entries[0]?.record_id);
    }
  });

  it("an exact hash still merges a chain while the shared value does not; a RETRACT and a regrade touch one record each", async () => {
    // files[0] and files[1] turn out to be one file (the NCA sends both MD5s with one SHA-1): merged.
    const third = withMd5(await settled(), files[2] as Hash);
    await publish([signedSubmission(agency("nca"), { hashes: [files[0] as Hash, files[1] as Hash, sha1()], submittedAt: Date.now() })]);
    await waitFor("merged", async () => (await latestRecords()).some((r) => r.mergedInto));
    let records = await settled();
    expect(carrying(records, shared)).toHaveLength(2);
    expect(withMd5(records, files[2] as Hash)).toEqual(third); // the file sharing only the PhotoDNA is untouched

    const before = new Map(records.map((r) => [r.recordId, r.revision]));
    await publish([
      signedSubmission(agency("force-c"), { op: "RETRACT", hashes: [pdqFiles[0] as Hash], submittedAt: Date.now() + 1 }),
      signedSubmission(agency("force-c"), {
        hashes: [pdqFiles[1] as Hash],
        grade: { uk: "A", ics: "A1", vics: null },
        submittedAt: Date.now() + 1,
      }),
    ]);
    await waitFor("retracted and regraded", async () => {
      const rs = await latestRecords();
      return withMd5(rs, pdqFiles[0] as Hash)?.deleted === true && withMd5(rs, pdqFiles[1] as Hash)?.classification.uk === "A";
    });
    records = await settled();
    const changed = records.filter((r) => r.revision !== before.get(r.recordId)).map((r) => r.recordId);
    expect(changed.sort()).toEqual(
      [withMd5(records, pdqFiles[0] as Hash)?.recordId, withMd5(records, pdqFiles[1] as Hash)?.recordId].sort(),
    );
    const untouched = withMd5(records, pdqFiles[2] as Hash);
    expect(untouched).toMatchObject({ deleted: false, revision: before.get(untouched?.recordId ?? "") });
    const held = await partnerHoldings(p.sinks[PARTNER]?.db.pool ?? p.hubDb.pool);
    expect(held.has(`md5:${pdqFiles[0]?.value}`)).toBe(false);
    expect(held.get(`md5:${pdqFiles[1]?.value}`)).toBe("A");
    expect(held.has(`pdq:${sharedPdq.value}`)).toBe(true); // still carried by live records
  });

  it("low-quality PDQ and constant PhotoDNA are degenerate from the start, link nothing and never reach a feed", async () => {
    const files = [md5(), md5()];
    // Two files with the same degenerate values, in one send under one key, so one dedup round sees
    // both: equal values in one batch are the case the linker's own batch index would link.
    await publish(files.map((file) => signedSubmission(agency("force-a"), { hashes: [zero, file, weak, flat], submittedAt: Date.now() })));
    await waitFor("both records", async () => {
      const rs = await latestRecords();
      return files.every((f) => !!withMd5(rs, f));
    });
    const records = await settled();
    for (const file of files) {
      const r = withMd5(records, file);
      expect(r?.hashes).toHaveLength(4);
      expect(r?.degenerate.map((d) => d.reason).sort()).toEqual(["CONSTANT", "CONSTANT", "LOW_QUALITY"]);
      expect(r?.nearDuplicates).toEqual([]);
    }
    for (const h of [weak, zero, flat]) expect(await feedEntries(h)).toEqual([]);
    const { rows } = await p.hubDb.pool.query<{ reason: string; records: number }>(
      "SELECT reason, records FROM degenerate_hashes WHERE value = ANY($1::text[]) ORDER BY reason",
      [[weak.value, zero.value, flat.value]],
    );
    expect(rows).toEqual([
      { reason: "CONSTANT", records: 2 },
      { reason: "CONSTANT", records: 2 },
      { reason: "LOW_QUALITY", records: 2 },
    ]);
  });

  it("the record that brings a PDQ to the threshold makes it degenerate on every carrier, and the partner gets a REMOVE", async () => {
    // sharedPdq sits on three records (one withdrawn); the fourth reaches the threshold.
    const held = (await feedEntries(sharedPdq))[0]?.record_id;
    expect(held).toBeDefined();
    const before = new Map((await latestRecords()).map((r) => [r.recordId, r.revision]));
    const fourth = md5();
    await publish([signedSubmission(agency("force-b"), { hashes: [fourth, sharedPdq], submittedAt: Date.now() })]);
    await waitFor("value degenerate on every live carrier", async () => {
      const live = carrying(await latestRecords(), sharedPdq).filter((r) => !r.deleted);
      return live.length === 3 && live.every((r) => r.degenerate.some((d) => d.value === sharedPdq.value && d.reason === "SHARED"));
    });
    const records = await settled();
    for (const r of carrying(records, sharedPdq).filter((x) => !x.deleted && x.recordId !== withMd5(records, fourth)?.recordId)) {
      expect(r.revision).toBeGreaterThan(before.get(r.recordId) ?? 0);
    }
    expect(withMd5(records, fourth)?.nearDuplicates).toEqual([]);
    expect(await feedEntries(sharedPdq)).toEqual([]);
    const feed = await feedRecords((rs) => rs.some((r) => r.op === "REMOVE" && r.value === sharedPdq.value));
    const upserts = feed.filter((r) => r.value === sharedPdq.value && r.op === "UPSERT");
    expect(upserts.length).toBeGreaterThan(0);
    const last = feed.filter((r) => r.value === sharedPdq.value).at(-1);
    expect(last?.op).toBe("REMOVE");
    const partner = await (p.sinks[PARTNER]?.db.pool ?? p.hubDb.pool).query<{ removed: boolean }>(
      "SELECT removed FROM partner_hashes WHERE alg = 'pdq' AND value = $1",
      [sharedPdq.value],
    );
    expect(partner.rows).toEqual([{ removed: true }]);
    const { rows } = await p.hubDb.pool.query("SELECT reason, records FROM degenerate_hashes WHERE alg = 'pdq' AND value = $1", [
      sharedPdq.value,
    ]);
    expect(rows).toEqual([{ reason: "SHARED", records: 4 }]);
    // No degenerate value was ever issued in any feed record after it became degenerate, nor the constant ones ever.
    const degenerate = new Set(
      (await p.hubDb.pool.query<{ value: string }>("SELECT value FROM degenerate_hashes")).rows.map((r) => r.value),
    );
    const issuedAfter = feed.filter((r) => degenerate.has(r.value) && r.op === "UPSERT" && r.value !== sharedPdq.value);
    expect(issuedAfter).toEqual([]);

    // What operators see: counts by reason, and each value as a prefix with its reason and carriers.
    expect(await degenerateCounts(p.hubDb.pool)).toEqual({ CONSTANT: 2, LOW_QUALITY: 1, SHARED: 1 });
    const listed = await degenerateValues(p.hubDb.pool, { reason: "SHARED", limit: 10 });
    expect(listed).toMatchObject([{ alg: "pdq", valuePrefix: `${sharedPdq.value.slice(0, 12)}…`, reason: "SHARED", records: 4 }]);
  });

  it("bin/hashrelay hashes degenerate lists each degenerate value by prefix with its reason and records carrying it", async () => {
    const cli = async (...args: string[]) =>
      (
        await promisify(execFile)(`${REPO_ROOT}bin/hashrelay`, ["hashes", "degenerate", ...args], {
          env: { ...process.env, DATABASE_URL: p.hubDb.url },
          timeout: 60_000,
        })
      ).stdout;
    const rows = (out: string) =>
      out
        .trim()
        .split("\n")
        .slice(0, -1)
        .map((line) => {
          const [alg, prefix, reason, records, since] = line.split("\t");
          expect(Number.isNaN(Date.parse(since?.replace(/^since /, "") ?? ""))).toBe(false);
          return [alg, prefix, reason, records];
        });
    const row = (h: Hash, reason: string, records: number) => [h.alg, `${h.value.slice(0, 12)}…`, reason, `${records} records`];

    const all = await cli();
    // Most carried first, then the three that two records each carry.
    expect(rows(all)[0]).toEqual(row(sharedPdq, "SHARED", 4));
    expect(rows(all).slice(1)).toEqual(
      expect.arrayContaining([row(weak, "LOW_QUALITY", 2), row(zero, "CONSTANT", 2), row(flat, "CONSTANT", 2)]),
    );
    expect(rows(all)).toHaveLength(4);
    expect(all.trim().split("\n").at(-1)).toBe("4 degenerate values (LOW_QUALITY 1, CONSTANT 2, SHARED 1)");
    // A prefix only, never the whole value.
    for (const h of [sharedPdq, weak, zero, flat]) expect(all).not.toContain(h.value);

    const constant = await cli("--reason", "constant");
    expect(rows(constant).sort()).toEqual([row(zero, "CONSTANT", 2), row(flat, "CONSTANT", 2)].sort());
    expect(rows(await cli("--limit", "1"))).toEqual([row(sharedPdq, "SHARED", 4)]);

    const refused = await cli("--reason", "BLURRY").then(
      () => null,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain("--reason must be one of LOW_QUALITY, CONSTANT, SHARED");
  });

  it("a RETRACT naming only a perceptual value withdraws the retracting agency's record, not another agency's", async () => {
    const only = photodna((i) => i * 13 + 5);
    const t = Date.now();
    await publish([
      signedSubmission(agency("force-a"), { hashes: [only], submittedAt: t }),
      signedSubmission(agency("force-b"), { hashes: [only], submittedAt: t }),
    ]);
    await waitFor("two records", async () => carrying(await latestRecords(), only).length === 2);
    await publish([signedSubmission(agency("force-a"), { op: "RETRACT", hashes: [only], submittedAt: t + 1 })]);
    await waitFor("one withdrawn", async () => carrying(await latestRecords(), only).some((r) => r.deleted));
    const records = await settled();
    const [gone, kept] = [carrying(records, only).filter((r) => r.deleted), carrying(records, only).filter((r) => !r.deleted)];
    expect(gone.map((r) => r.provenance.agencies)).toEqual([[]]);
    expect(kept.map((r) => r.provenance.agencies)).toEqual([["force-b"]]);
  });

  it("a RETRACT whose MD5 the hub never saw still reaches the agency's record by its perceptual value", async () => {
    const only = photodna((i) => i * 17 + 3);
    const t = Date.now();
    await publish([signedSubmission(agency("force-a"), { hashes: [only], submittedAt: t })]);
    await waitFor("one record", async () => carrying(await latestRecords(), only).length === 1);
    // Alone in its batch: nothing else loads the record for it.
    await publish([signedSubmission(agency("force-a"), { op: "RETRACT", hashes: [md5(), only], submittedAt: t + 1 })]);
    await waitFor("withdrawn", async () => carrying(await latestRecords(), only).some((r) => r.deleted));
  });
});
