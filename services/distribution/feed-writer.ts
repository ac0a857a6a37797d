/**
 * Turns planned feed changes (planner.ts) into signed, chained FeedRecords inside the caller's
 * transaction: extends each feed partition's chain and queues the records for Kafka and for S3
 * deltas according to the partner's delivery. Each partition's head is read (row-locked) once per
 * transaction and written back on flush(), so seq stays contiguous; the SQL is in store.ts.
 */
import { createHmac } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, feedPartitionOf, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { PoolClient } from "../shared/postgres.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Disclosure } from "./audit.ts";
import type { FeedChange, PartnerPolicy } from "./policy.ts";
import { appendFeedLog, enqueueFeedRecords, lockChainHead, storeChainHeads } from "./store.ts";

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

/** Collects one transaction's feed writes; call flush() before COMMIT. */
export class FeedWriter {
  private readonly heads = new Map<string, ChainHead>();
  private readonly outbox: { topic: string; key: string; value: Buffer; partition: number }[] = [];
  private readonly log: { partnerId: string; partition: number; seq: number; body: Buffer }[] = [];
  /** Every record issued in this transaction, with the hub record it discloses (for audit.ts). */
  readonly issued: Disclosure[] = [];

  private readonly client: PoolClient;
  private readonly codec: AvroCodec;
  private readonly topics: TopicNames;
  private readonly hub: HubSigner;
  private readonly now: number;

  constructor(client: PoolClient, codec: AvroCodec, topics: TopicNames, hub: HubSigner, now: number) {
    this.client = client;
    this.codec = codec;
    this.topics = topics;
    this.hub = hub;
    this.now = now;
  }

  private async head(partnerId: string, partition: number): Promise<ChainHead> {
    const k = `${partnerId}/${partition}`;
    let h = this.heads.get(k);
    if (!h) {
      const stored = await lockChainHead(this.client, partnerId, partition);
      h = stored ? { ...stored, dirty: false } : { seq: 0, digest: GENESIS_DIGEST, dirty: false };
      this.heads.set(k, h);
    }
    return h;
  }

  /** Signs and queues one planned change (planner.ts has already recorded it in its ledger). */
  async apply(policy: PartnerPolicy, change: FeedChange): Promise<void> {
    const e = change.entry;
    const partition = feedPartitionOf(e.alg, e.value, policy.feedPartitions);
    const head = await this.head(policy.partnerId, partition);
    const writer = this.codec.schema("FeedRecord").type;
    const record = signRecord(
      "FeedRecord",
      writer,
      {
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
      },
      this.hub.privateKey,
    );
    head.seq += 1;
    head.digest = feedRecordDigest(writer, record);
    head.dirty = true;
    const bytes = this.codec.encode("FeedRecord", record);
    this.issued.push({ record, recordId: e.recordId, delivery: policy.delivery });
    if (policy.delivery !== "s3") {
      this.outbox.push({ topic: this.topics.feed(policy.partnerId), key: `${e.alg}:${e.value}`, value: bytes, partition });
    }
    if (policy.delivery !== "kafka") this.log.push({ partnerId: policy.partnerId, partition, seq: record.seq, body: bytes });
  }

  /** Stores the extended chain heads and queues the records issued (call before COMMIT). */
  async flush(): Promise<void> {
    const dirty = [...this.heads].filter(([, h]) => h.dirty);
    await storeChainHeads(
      this.client,
      dirty.map(([k, h]) => ({ partnerId: k.split("/")[0] as string, partition: Number(k.split("/")[1]), seq: h.seq, digest: h.digest })),
    );
    await enqueueFeedRecords(this.client, this.outbox);
    await appendFeedLog(this.client, this.log);
  }
}
