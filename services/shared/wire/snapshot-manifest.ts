/**
 * The S3 snapshot and delta manifest: what distribution's exporter writes beside each gzip JSON
 * Lines object and what a partner sink verifies before loading a snapshot. A manifest names the
 * object, its SHA-256 (hex), the chain head of every feed partition (last seq and the hex chain
 * digest after it) and, for Kafka feeds, the offsets to tail from; the hub key signs it.
 *
 * The signature covers "hashrelay/manifest/v1\n" followed by the manifest without its `signature`
 * field as canonical JSON: object keys sorted at every depth, no whitespace, undefined fields left
 * out. The stored manifest is plain JSON (two-space indented); partners re-canonicalise to verify.
 *
 * Frozen contract: partners verify these exact bytes, in this code and in their own. Changing the
 * domain tag, the canonical form or the meaning of a field breaks every partner's bootstrap. To
 * change it, add a "hashrelay/manifest/v2" form (with a version field) and keep verifying v1.
 */
import { sign as edSign, verify as edVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";

export interface ExportManifest {
  readonly partnerId: string;
  readonly kind: "snapshot" | "delta";
  readonly object: string;
  readonly sha256: string;
  readonly count: number;
  /** Per feed partition: the last seq included and the chain digest after it (hex). */
  readonly heads: Record<string, { seq: number; digest: string }>;
  /**
   * Snapshots of Kafka-delivered feeds: per partition, the Kafka offset just after the snapshot's
   * last record, where a partner that bootstrapped from it starts tailing the topic.
   */
  readonly kafkaOffsets?: Record<string, string>;
  /** Deltas: the first seq per partition they start at. */
  readonly from?: Record<string, number>;
  readonly createdAt: string;
  readonly keyId: string;
  signature?: string;
}

/** One line of a snapshot object: a hash the partner holds, in the partner's category scheme. */
export interface SnapshotEntry {
  readonly alg: string;
  readonly value: string;
  readonly category: string;
  readonly contentType: string;
  readonly recordRef: string;
  readonly revision: number;
  readonly extra: Record<string, string>;
}

/** The S3 prefix under which every partner's feed files are: `feeds`, or `<namespace>/feeds`. */
export function feedsPrefix(namespace: string): string {
  return namespace ? `${namespace}/feeds` : "feeds";
}

/** Where the pointer to a partner's newest snapshot manifest is: `{ "manifest": "<key>" }`. */
export function latestSnapshotKey(prefix: string, partnerId: string): string {
  return `${prefix}/${partnerId}/latest-snapshot.json`;
}

/** JSON with object keys sorted at every depth: the same manifest always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The bytes a manifest signature covers: every field, nested ones included, except the signature. */
export function manifestSigningBytes(m: ExportManifest): Buffer {
  const { signature: _signature, ...body } = m;
  return Buffer.from(`hashrelay/manifest/v1\n${canonicalJson(body)}`);
}

export function signManifest(m: ExportManifest, key: KeyObject): ExportManifest {
  return { ...m, signature: edSign(null, manifestSigningBytes(m), key).toString("base64") };
}

export function manifestSignatureValid(m: ExportManifest, publicKey: KeyObject): boolean {
  if (!m.signature) return false;
  try {
    return edVerify(null, manifestSigningBytes(m), publicKey, Buffer.from(m.signature, "base64"));
  } catch {
    return false;
  }
}

/** The stored form of a manifest object in S3. */
export function serialiseManifest(m: ExportManifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 2));
}
