/**
 * Input generators of the hostile-input suite, free of vitest so that the isolated
 * scenarios (scenarios.ts, run in worker threads) can use them too: a seeded PRNG, byte
 * mutators, chunkers. The seed is HOSTILE_SEED (a number) when set, else a fixed one, so a
 * failure reproduces; `show` renders an input for failure messages.
 */
import { seededRandom } from "../support/seeded-random.ts";
export const SEED = Number(process.env["HOSTILE_SEED"] ?? 0x5eed_0007);

/** Seeded (HOSTILE_SEED) and good enough to pick mutations. */
export function prng(seed: number = SEED): () => number {
  return seededRandom(seed);
}

export type Rng = () => number;

export function int(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[int(rng, xs.length)] as T;
}

export function randomBuffer(rng: Rng, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = int(rng, 256);
  return b;
}

/** Bytes from a small alphabet, so random input gets past the first byte of a parser now and then. */
export function randomFrom(rng: Rng, alphabet: string | Buffer, length: number): Buffer {
  const a = typeof alphabet === "string" ? Buffer.from(alphabet, "latin1") : alphabet;
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = a[int(rng, a.length)] as number;
  return b;
}

/** Every prefix of `buf` (truncation at every position). */
export function* truncations(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) yield buf.subarray(0, i);
}

/** `buf` with one bit flipped, for every bit (or, with `rng`, one random bit per byte). */
export function* bitFlips(buf: Buffer, rng?: Rng): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) {
    const bits = rng ? [int(rng, 8)] : [0, 1, 2, 3, 4, 5, 6, 7];
    for (const bit of bits) {
      const copy = Buffer.from(buf);
      copy[i] = (copy[i] as number) ^ (1 << bit);
      yield copy;
    }
  }
}

/**
 * `buf` with each byte in turn set to each of `values` (boundary bytes: 0x00, 0x7f, 0x80, 0xff...),
 * or, with `rng`, to one of them picked at random per position.
 */
export function* byteSets(buf: Buffer, values: readonly number[], rng?: Rng): Generator<Buffer> {
  for (let i = 0; i < buf.length; i++) {
    for (const v of rng ? [pick(rng, values)] : values) {
      if (buf[i] === v) continue;
      const copy = Buffer.from(buf);
      copy[i] = v;
      yield copy;
    }
  }
}

/** `buf` with `insert` spliced in at every position. */
export function* splices(buf: Buffer, insert: Buffer): Generator<Buffer> {
  for (let i = 0; i <= buf.length; i++) yield Buffer.concat([buf.subarray(0, i), insert, buf.subarray(i)]);
}

/** A few random edits (flip, set, delete, duplicate a span) of `buf`. */
export function havoc(rng: Rng, buf: Buffer, edits = 1 + int(rng, 4)): Buffer {
  let b = Buffer.from(buf);
  for (let e = 0; e < edits && b.length > 0; e++) {
    const at = int(rng, b.length);
    switch (int(rng, 5)) {
      case 0:
        b[at] = (b[at] as number) ^ (1 << int(rng, 8));
        break;
      case 1:
        b[at] = pick(rng, [0x00, 0x7f, 0x80, 0xff, 0x22, 0x5b, 0x7b, 0x2c, 0x0a, 0x0d]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(rng, 8)))]);
        break;
      case 3: {
        const len = 1 + int(rng, 16);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      default:
        b = b.subarray(0, at);
    }
  }
  return b;
}

/** Short printable description of a hostile input, for failure messages. */
export function show(input: Buffer | string): string {
  const b = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const head = b.subarray(0, 160);
  return `${b.length} bytes: hex ${head.toString("hex")}${b.length > head.length ? "…" : ""} | text ${JSON.stringify(head.toString("latin1"))}`;
}

/** Chunks of `buf` cut at random places (1 to `max` bytes), so tokens and UTF-8 sequences straddle them. */
export function randomChunks(rng: Rng, buf: Buffer, max = 64): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + int(rng, max);
    parts.push(buf.subarray(i, i + n));
    i += n;
  }
  return parts;
}

export async function* sourceOf(parts: Iterable<Buffer | string>, onChunk?: () => void): AsyncGenerator<Buffer> {
  for (const p of parts) {
    onChunk?.();
    yield typeof p === "string" ? Buffer.from(p, "utf8") : p;
  }
}

export async function collect<T>(it: AsyncIterable<T>, each?: (item: T) => void): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    each?.(x);
    out.push(x);
  }
  return out;
}
