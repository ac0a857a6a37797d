/**
 * Synthetic PDQ and PhotoDNA values for the near-duplicate index tests and benchmark: seeded
 * pseudo-random digests only, reproducible from their seed. Test and bench code only: nothing
 * under services/ outside a test imports it. Never load real hash lists here or anywhere in tests
 * or benchmarks.
 */

/** A seeded PRNG (sfc32, seeded through splitmix32) returning unsigned 32-bit integers. */
export function createRng(seed: number): () => number {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
}

/** A uniform integer in [0, n). */
export function randomInt(rng: () => number, n: number): number {
  return Math.floor((rng() / 0x1_0000_0000) * n);
}

const hexScratch = Buffer.alloc(32);

/** The 64-hex-character PDQ form of 8 words at words[offset..] (word j = characters 8j..8j+7). */
export function pdqWordsToHex(words: Uint32Array, offset = 0): string {
  for (let j = 0; j < 8; j++) hexScratch.writeUInt32BE(words[offset + j]!, j * 4);
  return hexScratch.toString("hex");
}

/** A random 256-bit PDQ-shaped hash as 64 lower-case hex characters. */
export function randomPdqHex(rng: () => number): string {
  const words = new Uint32Array(8);
  for (let j = 0; j < 8; j++) words[j] = rng();
  return pdqWordsToHex(words);
}

/** Fills words with n random hashes (8 words each). */
export function randomPdqWords(rng: () => number, n: number): Uint32Array {
  const words = new Uint32Array(n * 8);
  for (let i = 0; i < words.length; i++) words[i] = rng();
  return words;
}

/** Flips the given bit positions (0..255, counted from the first hex character's top bit). */
export function flipPdqBits(hex: string, bits: Iterable<number>): string {
  const buf = Buffer.from(hex, "hex");
  for (const bit of bits) buf[bit >>> 3] = buf[bit >>> 3]! ^ (0x80 >>> (bit & 7));
  return buf.toString("hex");
}

/** k distinct random bit positions out of 256. */
export function randomBitPositions(rng: () => number, k: number): number[] {
  const all = Array.from({ length: 256 }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + randomInt(rng, 256 - i);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, k);
}

/** A hash exactly k bits away from hex, at random positions. */
export function pdqNeighbour(rng: () => number, hex: string, k: number): string {
  return flipPdqBits(hex, randomBitPositions(rng, k));
}

/** 144 random bytes, the shape of a PhotoDNA hash. */
export function randomPhotoDnaBytes(rng: () => number): Uint8Array {
  const out = new Uint8Array(144);
  for (let i = 0; i < 144; i++) out[i] = rng() & 0xff;
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
