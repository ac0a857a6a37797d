/**
 * Turns planned feed changes (planner.ts) into signed, chained FeedRecords inside the caller's
 * transaction: extends each feed partition's chain and queues the records for Kafka and for S3
 * deltas according to the partner's delivery. The chain heads are read (row-locked, all of them in
 * one statement) once per transaction that issues a record and written back on flush(), so seq
 * stays contiguous; the SQL is in store.ts.
 *
 * Records are signed on flush(), when the transaction's last record of each partition is known:
 * `every-record` signs each one; `chain` signs only those (and every CHAIN_SIGNING_INTERVALth seq)
 * and leaves the others' signature empty, authenticated by the chain (shared/wire/feed-chain.ts).
 * Either way the partition's committed head is signed, which snapshots and deltas rely on.
 */
import { createHmac } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, chainSignsRecord, feedPartitionOf, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { PoolClient } from "../shared/postgres.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { Unsigned } from "../shared/wire/signing.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Disclosure } from "./audit.ts";
import type { Delivery, FeedChange, PartnerPolicy } from "./policy.ts";
import { appendFeedLog, enqueueFeedRecords, lockChainHeads, recordDisclosedRefs, storeChainHeads } from "./store.ts";

export interface HubSigner {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** Secret for per-partner record pseudonyms (recordRef). */
  readonly pseudonymSecret: string;
}

export function recordRef(secret: string, partnerId: string, recordId: string): string {
  return createHmac("sha256", secret).update(`${partnerId}\n${recordId}`).digest("hex").slice(0, 32);
}

interface ChainHead {
  seq: number;
  digest: Buffer;
  dirty: boolean;
}

/** Which feed records the hub signs: each one, or the chain-signed form (DISTRIBUTION_FEED_SIGNING). */
export type FeedSigning = "every-record" | "chain";

/** A record planned in this transaction, signed and queued on flush(). */
interface Planned {
  readonly record: Unsigned<FeedRecord>;
  readonly recordId: string;
  readonly delivery: Delivery;
  readonly key: string;
}

/** Collects one transaction's feed writes; call flush() before COMMIT. */
export class FeedWriter {
  private readonly heads = new Map<string, ChainHead>();
  private headsLocked = false;
  private readonly outbox: { topic: string; key: string; value: Buffer; partition: number }[] = [];
  private readonly log: { partnerId: string; partition: number; seq: number; body: Buffer }[] = [];
  private readonly planned: Planned[] = [];
  /** partner|recordRef -> recordId of every UPSERT: feedback names records by these refs (disclosed_refs). */
  private readonly refs = new Map<string, { partnerId: string; recordRef: string; recordId: string }>();
  /** Every record issued in this transaction, with the hub record it discloses (for audit.ts); filled by flush(). */
  readonly issued: Disclosure[] = [];

  private readonly client: PoolClient;
  private readonly codec: AvroCodec;
  private readonly topics: TopicNames;
  private readonly hub: HubSigner;
  private readonly now: number;
  private readonly signing: FeedSigning;

  constructor(
    client: PoolClient,
    codec: AvroCodec,
    topics: TopicNames,
    hub: HubSigner,
    now: number,
    signing: FeedSigning = "every-record",
  ) {
    this.client = client;
    this.codec = codec;
    this.topics = topics;
    this.hub = hub;
    this.now = now;
    this.signing = signing;
  }

  private async head(partnerId: string, partition: number): Promise<ChainHead> {
    if (!this.headsLocked) {
      for (const h of await lockChainHeads(this.client))
        this.heads.set(`${h.partnerId}/${h.partition}`, { seq: h.seq, digest: h.digest, dirty: false });
      this.headsLocked = true;
    }
    const k = `${partnerId}/${partition}`;
    let h = this.heads.get(k);
    if (!h) {
      h = { seq: 0, digest: GENESIS_DIGEST, dirty: false };
      this.heads.set(k, h);
    }
    return h;
  }

  /** Chains one planned change (planner.ts has already recorded it in its ledger); flush() signs and queues it. */
  async apply(policy: PartnerPolicy, change: FeedChange): Promise<void> {
    const e = change.entry;
    const partition = feedPartitionOf(e.alg, e.value, policy.feedPartitions);
    const head = await this.head(policy.partnerId, partition);
    const record: Unsigned<FeedRecord> = {
      partnerId: policy.partnerId,
      partition,
      seq: head.seq + 1,
      prevDigest: head.digest,
      op: change.op,
      alg: e.alg,
      value: e.value,
      category: change.op === "UPSERT" ? e.category : null,
      contentType: change.op === "UPSERT" ? (e.contentType as FeedRecord["contentType"]) : null,
      revision: change.op === "UPSERT" ? e.revision : change.revision,
      recordRef: recordRef(this.hub.pseudonymSecret, policy.partnerId, e.recordId),
      extra: change.op === "UPSERT" ? e.extra : {},
      issuedAt: this.now,
      keyId: this.hub.keyId,
    };
    head.seq += 1;
    head.digest = feedRecordDigest(this.codec.schema("FeedRecord").type, record);
    head.dirty = true;
    this.planned.push({ record, recordId: e.recordId, delivery: policy.delivery, key: `${e.alg}:${e.value}` });
  }

  /** Signs the records chained, queues them and stores the extended chain heads (call before COMMIT). */
  async flush(): Promise<void> {
    this.seal();
    const dirty = [...this.heads].filter(([, h]) => h.dirty);
    await storeChainHeads(
      this.client,
      dirty.map(([k, h]) => ({ partnerId: k.split("/")[0] as string, partition: Number(k.split("/")[1]), seq: h.seq, digest: h.digest })),
    );
    await enqueueFeedRecords(this.client, this.outbox);
    await appendFeedLog(this.client, this.log);
    await recordDisclosedRefs(this.client, [...this.refs.values()]);
    this.refs.clear();
  }

  /** Signs what the signing mode asks for, encodes every planned record and queues it by delivery. */
  private seal(): void {
    const writer = this.codec.schema("FeedRecord").type;
    // The transaction's last record of each partition: its seq is the head's.
    const lastSeq = new Map([...this.heads].map(([k, h]) => [k, h.seq]));
    for (const p of this.planned.splice(0)) {
      const r = p.record;
      const last = lastSeq.get(`${r.partnerId}/${r.partition}`) === r.seq;
      const record: FeedRecord =
        this.signing === "every-record" || chainSignsRecord(r.seq, last)
          ? signRecord("FeedRecord", writer, r, this.hub.privateKey)
          : { ...r, signature: Buffer.alloc(0) };
      const bytes = this.codec.encode("FeedRecord", record);
      this.issued.push({ record, recordId: p.recordId, delivery: p.delivery });
      if (r.op === "UPSERT")
        this.refs.set(`${r.partnerId}|${r.recordRef}`, { partnerId: r.partnerId, recordRef: r.recordRef, recordId: p.recordId });
      if (p.delivery !== "s3") this.outbox.push({ topic: this.topics.feed(r.partnerId), key: p.key, value: bytes, partition: r.partition });
      if (p.delivery !== "kafka") this.log.push({ partnerId: r.partnerId, partition: r.partition, seq: r.seq, body: bytes });
    }
  }
}
