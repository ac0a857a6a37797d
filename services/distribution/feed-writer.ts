/**
 * Turns one transaction's planned feed changes (planner.ts) into signed, chained FeedRecords:
 * extends each feed partition's chain from the heads it is given and returns the records to queue
 * for Kafka and for S3 deltas according to the partner's delivery, with the extended heads. No SQL
 * here: the caller gives it every chain head row-locked in its transaction (store.loadRound) and
 * writes what finish() returns in the same transaction (store.writeRound), so seq stays contiguous.
 *
 * Records are signed on finish(), when the transaction's last record of each partition is known:
 * `every-record` signs each one; `chain` signs only those (and every CHAIN_SIGNING_INTERVALth seq)
 * and leaves the others' signature empty, authenticated by the chain (shared/wire/feed-chain.ts).
 * Either way the partition's committed head is signed, which snapshots and deltas rely on.
 */
import { createHmac } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { GENESIS_DIGEST, chainSignsRecord, feedPartitionOf, feedRecordDigest } from "../shared/wire/feed-chain.ts";
import type { FeedRecord } from "../shared/wire/records.ts";
import { signRecord } from "../shared/wire/signing.ts";
import type { Unsigned } from "../shared/wire/signing.ts";
import type { TopicNames } from "../shared/topics.ts";
import type { Disclosure } from "./audit.ts";
import type { Delivery, FeedChange, PartnerPolicy } from "./policy.ts";
import type { ChainHead, FeedLogRow, OutboxMessage } from "./store.ts";

export interface HubSigner {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** Secret for per-partner record pseudonyms (recordRef). */
  readonly pseudonymSecret: string;
}

export function recordRef(secret: string, partnerId: string, recordId: string): string {
  return createHmac("sha256", secret).update(`${partnerId}\n${recordId}`).digest("hex").slice(0, 32);
}

interface Head {
  seq: number;
  digest: Buffer;
  dirty: boolean;
}

/** Which feed records the hub signs: each one, or the chain-signed form (DISTRIBUTION_FEED_SIGNING). */
export type FeedSigning = "every-record" | "chain";

/** A record planned in this transaction, signed and queued on finish(). */
interface Planned {
  readonly record: Unsigned<FeedRecord>;
  readonly recordId: string;
  readonly delivery: Delivery;
  readonly key: string;
}

/** What one transaction writes for its feeds (store.writeRound). */
export interface FeedWrites {
  /** The chain heads extended. */
  readonly heads: ChainHead[];
  /** Feed records for Kafka, each to its explicit feed partition, in the order issued. */
  readonly outbox: OutboxMessage[];
  /** Feed records for the next S3 delta. */
  readonly log: FeedLogRow[];
}

/** Collects one transaction's feed records; finish() signs them and says what to write before COMMIT. */
export class FeedWriter {
  private readonly heads = new Map<string, Head>();
  private readonly outbox: OutboxMessage[] = [];
  private readonly log: FeedLogRow[] = [];
  private readonly planned: Planned[] = [];
  /** Every record issued in this transaction, with the hub record it discloses (for audit.ts); filled by finish(). */
  readonly issued: Disclosure[] = [];

  private readonly codec: AvroCodec;
  private readonly topics: TopicNames;
  private readonly hub: HubSigner;
  private readonly now: number;
  private readonly signing: FeedSigning;

  /** `lockedHeads`: every chain head as stored, row-locked in the caller's transaction; a partition without one starts at genesis. */
  constructor(
    lockedHeads: readonly ChainHead[],
    codec: AvroCodec,
    topics: TopicNames,
    hub: HubSigner,
    now: number,
    signing: FeedSigning = "every-record",
  ) {
    for (const h of lockedHeads) this.heads.set(`${h.partnerId}/${h.partition}`, { seq: h.seq, digest: h.digest, dirty: false });
    this.codec = codec;
    this.topics = topics;
    this.hub = hub;
    this.now = now;
    this.signing = signing;
  }

  private head(partnerId: string, partition: number): Head {
    const k = `${partnerId}/${partition}`;
    let h = this.heads.get(k);
    if (!h) {
      h = { seq: 0, digest: GENESIS_DIGEST, dirty: false };
      this.heads.set(k, h);
    }
    return h;
  }

  /** Chains one planned change (planner.ts has already recorded it in its ledger); finish() signs and queues it. */
  apply(policy: PartnerPolicy, change: FeedChange): void {
    const e = change.entry;
    const partition = feedPartitionOf(e.alg, e.value, policy.feedPartitions);
    const head = this.head(policy.partnerId, partition);
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

  /** Signs the records chained; returns them, queued by delivery, with the extended chain heads (write them before COMMIT). */
  finish(): FeedWrites {
    this.seal();
    const heads = [...this.heads].filter(([, h]) => h.dirty);
    return {
      heads: heads.map(([k, h]) => ({
        partnerId: k.split("/")[0] as string,
        partition: Number(k.split("/")[1]),
        seq: h.seq,
        digest: h.digest,
      })),
      outbox: this.outbox.splice(0),
      log: this.log.splice(0),
    };
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
      if (p.delivery !== "s3") this.outbox.push({ topic: this.topics.feed(r.partnerId), key: p.key, value: bytes, partition: r.partition });
      if (p.delivery !== "kafka") this.log.push({ partnerId: r.partnerId, partition: r.partition, seq: r.seq, body: bytes });
    }
  }
}
