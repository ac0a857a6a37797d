/**
 * Big hostile cases, each run by runIsolated (support.ts) in a child process with a hard heap
 * limit and a deadline, so a regression to unbounded allocation fails fast and cleanly instead
 * of taking the test process down. No vitest here: each scenario returns a plain summary that
 * the test asserts on, and calls `sample()` often so synchronous work reports its peak heap.
 */
import { AvroCodec, loadSchemaVersions } from "../../services/shared/wire/codec.ts";
import { CodecError } from "../../services/shared/errors.ts";
import type { RecordName } from "../../services/shared/wire/records.ts";
import { parseSubmissionBatch } from "../../services/shared/wire/submission-json.ts";
import { readVicsDrafts } from "../../services/force-cli/formats/vics.ts";
import { readCsvDrafts } from "../../services/force-cli/formats/csv.ts";
import { normaliseHash } from "../../services/shared/wire/submission-validation.ts";
import type { DraftItem } from "../../services/force-cli/formats/common.ts";
import {
  sampleAuditEvent,
  sampleCanonicalRecord,
  sampleFeedRecord,
  samplePartnerFeedback,
  sampleRejection,
  unsignedSubmission,
} from "../support/fixtures.ts";
import { bitFlips, byteSets, havoc, int, pick, prng, randomBuffer, show, sourceOf, splices, truncations } from "./fuzz.ts";

type Sample = () => void;

const MiB = 1024 * 1024;
const H = "0123456789abcdef0123456789abcdef";
const VICS_HEAD = '{"odata.metadata":"http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media","value":[';

/** Zig-zag varint of a (possibly huge) integer, as Avro writes longs. */
export function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  v = v >= 0n ? v * 2n : -v * 2n - 1n;
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

/** Counts claimed by hostile array/map headers: 2^31, 1e9, the same as negative block counts, 2^62. */
export const HUGE_COUNTS: readonly (number | bigint)[] = [2 ** 31, 1e9, -(2 ** 31), -1e9, 2n ** 62n, 2 ** 53];

export function sampleValues(): { [N in RecordName]: unknown } {
  return {
    Submission: { ...unsignedSubmission(), signature: Buffer.alloc(64, 7) },
    CanonicalRecord: sampleCanonicalRecord(),
    FeedRecord: sampleFeedRecord(),
    Rejection: sampleRejection(),
    AuditEvent: sampleAuditEvent(),
    PartnerFeedback: samplePartnerFeedback(),
  };
}

function headerOf(fingerprint: string): Buffer {
  return Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.from(fingerprint, "hex")]);
}

/** Valid encodings to mutate: the fixtures, plus avsc's random values of every version (current and history), each in its writer's encoding. */
export function validEncodings(codec: AvroCodec, perVersion: number): { name: RecordName; bytes: Buffer }[] {
  const versions = loadSchemaVersions();
  const values = sampleValues();
  const out = [...versions.current.keys()].map((name) => ({ name, bytes: codec.encode(name, values[name] as never) }));
  for (const v of [...versions.current.values(), ...versions.history]) {
    for (let i = 0; i < perVersion; i++)
      out.push({ name: v.name, bytes: Buffer.concat([headerOf(v.fingerprint), v.type.toBuffer(v.type.random())]) });
  }
  return out;
}

interface Summary {
  cases: number;
  outcomes: Record<string, number>;
  bad: string[];
}

function tally(s: Summary, outcome: string, bad?: string): void {
  s.cases++;
  s.outcomes[outcome] = (s.outcomes[outcome] ?? 0) + 1;
  if (bad !== undefined && s.bad.length < 5) s.bad.push(bad);
}

function decodeOutcome(codec: AvroCodec, name: RecordName, bytes: Buffer, s: Summary): void {
  try {
    codec.decode(name, bytes);
    tally(s, "decoded");
  } catch (err) {
    if (err instanceof CodecError && ["BAD_MAGIC", "UNKNOWN_SCHEMA", "MALFORMED_AVRO"].includes(err.reason)) tally(s, err.reason);
    else tally(s, "BAD", `${name}: ${(err as Error).name}: ${(err as Error).message} — input ${show(bytes)}`);
  }
}

async function drain(items: AsyncIterable<DraftItem>, sample: Sample): Promise<{ count: number; summary: string[] }> {
  const summary: string[] = [];
  let count = 0;
  for await (const item of items) {
    if ((count & 1023) === 0) sample();
    if (summary.length < 8) summary.push(item.ok ? "ok" : `${item.reason}: ${item.detail.slice(0, 80)}`);
    count++;
  }
  return { count, summary };
}

export const scenarios: Record<string, (sample: Sample) => unknown> = {
  /** A few thousand random bodies: bare, behind the magic only, behind a known fingerprint of any record and version. */
  avroRandomBytes(sample) {
    const codec = new AvroCodec();
    const versions = loadSchemaVersions();
    const all = [...versions.current.values(), ...versions.history];
    const names = [...versions.current.keys()];
    const rng = prng();
    const s: Summary = { cases: 0, outcomes: {}, bad: [] };
    for (let i = 0; i < 6000; i++) {
      if ((i & 255) === 0) sample();
      const body = randomBuffer(rng, int(rng, 300));
      const head = i % 4 === 0 ? Buffer.alloc(0) : i % 4 === 1 ? Buffer.from([0xc3, 0x01]) : headerOf(pick(rng, all).fingerprint);
      decodeOutcome(codec, pick(rng, names), Buffer.concat([head, body]), s);
    }
    return s;
  },

  /** Every truncation, every bit flip, boundary bytes at every position, random havoc, trailing bytes: of valid encodings of every version. */
  avroMutations(sample) {
    const codec = new AvroCodec();
    const rng = prng();
    const s: Summary = { cases: 0, outcomes: {}, bad: [] };
    for (const { name, bytes } of validEncodings(codec, 2)) {
      sample();
      for (const t of truncations(bytes)) decodeOutcome(codec, name, t, s);
      for (const f of bitFlips(bytes)) decodeOutcome(codec, name, f, s);
      for (const b of byteSets(bytes, [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff])) decodeOutcome(codec, name, b, s);
      for (let i = 0; i < 100; i++) decodeOutcome(codec, name, havoc(rng, bytes), s);
      decodeOutcome(codec, name, Buffer.concat([bytes, Buffer.from([0])]), s);
    }
    return s;
  },

  /**
   * Every huge count written over (and spliced in at) every byte position of a valid encoding of
   * every record, current and historical schemas: wherever it lands on an array or map block
   * count it claims billions of items in a body of a few hundred bytes.
   */
  avroHugeCountsEverywhere(sample) {
    const codec = new AvroCodec();
    const s: Summary = { cases: 0, outcomes: {}, bad: [] };
    const claims = [
      ...[...HUGE_COUNTS, -1, -(2 ** 62)].map((n) => varint(n)),
      Buffer.alloc(200, 0xff), // a varint that never ends
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), // 11 bytes
    ];
    for (const { name, bytes } of validEncodings(codec, 1)) {
      for (const claim of claims) {
        sample();
        const body = bytes.subarray(10);
        for (const spliced of splices(body, claim)) decodeOutcome(codec, name, Buffer.concat([bytes.subarray(0, 10), spliced]), s);
        for (let i = 0; i < body.length; i++) {
          const over = Buffer.from(body);
          claim.copy(over, i);
          decodeOutcome(codec, name, Buffer.concat([bytes.subarray(0, 10), over]), s);
        }
      }
    }
    return s;
  },

  /** Hand-made bodies: each array and map of each record claims a huge count right where it starts. */
  avroHugeCountsAtBlockStarts(sample) {
    const codec = new AvroCodec();
    const s: Summary = { cases: 0, outcomes: {}, bad: [] };
    const str = (t: string) => Buffer.concat([varint(Buffer.byteLength(t)), Buffer.from(t)]);
    const header = (name: RecordName) => Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.from(codec.schema(name).fingerprint, "hex")]);
    const prefixes: [RecordName, Buffer][] = [
      // Submission: submissionId, agencyId, keyId, op, contentType, then hashes[]
      ["Submission", Buffer.concat([str("s"), str("a"), str("k"), varint(0), varint(0)])],
      // CanonicalRecord: recordId, revision, deleted, mergedInto(null), contentType, then hashes[]
      ["CanonicalRecord", Buffer.concat([str("r"), varint(1), Buffer.from([0]), varint(0), varint(0)])],
      // FeedRecord: ... up to extra{} (map)
      [
        "FeedRecord",
        Buffer.concat([str("p"), varint(0), varint(1), str(""), varint(0), varint(0), str("v"), varint(0), varint(0), varint(1), str("r")]),
      ],
      // AuditEvent: eventId, at, service, actor, action, subjectKind, subjectId, revision(null), then detail{}
      ["AuditEvent", Buffer.concat([str("e"), varint(1), str("s"), str("a"), str("x"), str("k"), str("i"), varint(0)])],
      // Rejection: rejectionId, then originalBytes claiming 2^31+ bytes
      ["Rejection", str("r")],
    ];
    const details: string[] = [];
    for (const [name, prefix] of prefixes) {
      for (const count of HUGE_COUNTS) {
        for (const tail of [Buffer.alloc(0), Buffer.alloc(64, 0x02)]) {
          sample();
          const bytes = Buffer.concat([header(name), prefix, varint(count), tail]);
          const start = performance.now();
          decodeOutcome(codec, name, bytes, s);
          if (performance.now() - start > 100)
            tally(s, "SLOW", `${name}: ${Math.round(performance.now() - start)} ms — input ${show(bytes)}`);
          try {
            codec.decode(name, bytes);
          } catch (err) {
            if (details.length < 4 && tail.length === 0) details.push((err as Error).message);
          }
        }
      }
    }
    sample();
    return { ...s, details };
  },

  /** One media item with a 50 MiB string value: must be refused at maxItemChars without holding 50 MiB. */
  async vicsHugeString(sample) {
    const piece = "a".repeat(MiB);
    function* parts(): Generator<string> {
      yield `${VICS_HEAD}{"MD5":"${H}","FileName":"`;
      for (let i = 0; i < 50; i++) yield piece;
      yield `"},{"MD5":"${H}"}]}`;
    }
    return drain(readVicsDrafts(sourceOf(parts(), sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** One media item with a 50 MiB number (numbers did not count towards the item size). */
  async vicsHugeNumber(sample) {
    const piece = "1".repeat(MiB);
    function* parts(): Generator<string> {
      yield `${VICS_HEAD}{"MD5":"${H}","MediaSize":1`;
      for (let i = 0; i < 50; i++) yield piece;
      yield `},{"MD5":"${H}"}]}`;
    }
    return drain(readVicsDrafts(sourceOf(parts(), sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** A 50 MiB key, then 60 keys of 1 MiB with [] values (keys of non-scalar fields did not count). */
  async vicsHugeKeys(sample) {
    const piece = "k".repeat(MiB);
    function* parts(): Generator<string> {
      yield `${VICS_HEAD}{"MD5":"${H}","`;
      for (let i = 0; i < 50; i++) yield piece;
      yield `":1},{"MD5":"${H}"`;
      for (let i = 0; i < 60; i++) yield `,"${i}${piece.slice(0, MiB - 16)}":[]`;
      yield `},{"MD5":"${H}"}]}`;
    }
    return drain(readVicsDrafts(sourceOf(parts(), sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** 2 MB of `1,` media items given as ONE source chunk: items must be yielded as they come. */
  async vicsOneBigChunk(sample) {
    const body = `${VICS_HEAD}${"1,".repeat(MiB)}{"MD5":"${H}"}]}`;
    return drain(readVicsDrafts(sourceOf([body], sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** 20 MiB of "[" inside the value array: refused as too deep, not held as 20 million frames. */
  async vicsDeepUnclosed(sample) {
    const piece = "[".repeat(MiB);
    function* parts(): Generator<string> {
      yield VICS_HEAD;
      for (let i = 0; i < 20; i++) yield piece;
    }
    return drain(readVicsDrafts(sourceOf(parts(), sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** A 50 MiB CSV line (in 1 MiB chunks), then a good row. */
  async csvHugeLine(sample) {
    const piece = Buffer.alloc(MiB, 0x61);
    function* parts(): Generator<Buffer | string> {
      yield "md5,series\n";
      for (let i = 0; i < 50; i++) yield piece;
      yield `\n${H},s\n`;
    }
    return drain(readCsvDrafts(sourceOf(parts(), sample), { submissionIdPrefix: "hostile:" }), sample);
  },

  /** 8 MiB (the default HTTP body limit) of "[0,0,0,…]": 4 million items, capped. */
  jsonZeros(sample) {
    const body = Buffer.from(`[${"0,".repeat(4 * MiB - 1)}0]`);
    sample();
    const items = parseSubmissionBatch(body);
    sample();
    const last = items[items.length - 1];
    return {
      count: items.length,
      last: last && !last.ok ? { reason: last.reason, index: last.index, originalBytes: last.original.length } : null,
    };
  },

  /** 8 MiB of JSON Lines: one submission-like line, then 2.7 million `{}` lines. */
  jsonLinesFlood(sample) {
    const body = Buffer.from(`{"submissionId":"x"}\n${"{}\n".repeat(2_700_000)}`);
    sample();
    const items = parseSubmissionBatch(body);
    sample();
    const last = items[items.length - 1];
    return { count: items.length, last: last && !last.ok ? { reason: last.reason, index: last.index } : null };
  },

  /** Base64 padding runs of 4 MiB that do not end the string (a quadratic regex took minutes). */
  paddingRuns(sample) {
    const run = "=".repeat(4 * MiB);
    const body = Buffer.from(
      JSON.stringify({
        submissionId: "s",
        agencyId: "a",
        keyId: "k",
        op: "ASSERT",
        contentType: "image",
        hashes: [{ alg: "md5", value: H }],
        grade: { uk: "A" },
        gradingStatus: "indicative",
        submittedAt: 1767225600000,
        signature: `${run}A`,
      }),
    );
    sample();
    const [item] = parseSubmissionBatch(body);
    sample();
    let photoDna = "accepted";
    try {
      normaliseHash("photodna", `${run}A`);
    } catch (err) {
      photoDna = (err as { reason?: string }).reason ?? String(err);
    }
    return { json: item && !item.ok ? item.reason : "accepted", photoDna };
  },
};
