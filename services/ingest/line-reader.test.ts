import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readLines } from "./line-reader.ts";
import type { Line } from "./line-reader.ts";

const LIMITS = { maxLineBytes: 1_000_000, keepBytes: 64 * 1024 };

async function collect(chunks: Buffer[], limits = LIMITS): Promise<Line[]> {
  const out: Line[] = [];
  for await (const line of readLines(Readable.from(chunks), limits)) out.push(line);
  return out;
}

/** node:readline's lines (fed no empty chunks: one between a CR and its LF makes it see two breaks). */
async function readlineLines(chunks: Buffer[]): Promise<string[]> {
  const out: string[] = [];
  for await (const line of createInterface({ input: Readable.from(chunks), crlfDelay: Infinity })) out.push(line);
  return out;
}

/** Cuts `bytes` at random places, sometimes into empty or one-byte chunks. */
function chunked(bytes: Buffer, random: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = Math.floor(random() * 8);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("readLines", () => {
  it("splits like node:readline (LF, CRLF, lone CR, also across chunks) and counts every byte", async () => {
    const random = seeded(7);
    const alphabet = ["a", "{", " ", "\n", "\r", "\r\n", "é"];
    for (let round = 0; round < 300; round++) {
      const text = Array.from({ length: Math.floor(random() * 40) }, () => alphabet[Math.floor(random() * alphabet.length)]).join("");
      const bytes = Buffer.from(text, "utf8");
      const chunks = chunked(bytes, random);
      const lines = await collect(chunks);
      expect(
        lines.map((l) => l.bytes.toString("utf8")),
        JSON.stringify(text),
      ).toEqual(await readlineLines(chunks.filter((c) => c.length > 0)));
      // Each line's end is where its break ends: the bytes up to it are the line, then LF, CRLF or CR.
      let from = 0;
      for (const l of lines) {
        expect(l.length).toBe(l.bytes.length);
        expect(bytes.subarray(from, from + l.length).equals(l.bytes)).toBe(true);
        expect(["", "\n", "\r", "\r\n"]).toContain(bytes.subarray(from + l.length, l.end).toString());
        from = l.end;
      }
      expect(from, JSON.stringify(text)).toBe(bytes.length);
    }
  });

  it("keeps the original bytes of a line that is not UTF-8", async () => {
    const bad = Buffer.from([0x7b, 0xff, 0xfe, 0xc3, 0x7d]);
    const [line] = await collect([Buffer.concat([bad, Buffer.from("\n")])]);
    expect(line?.bytes.equals(bad)).toBe(true);
    expect(line?.end).toBe(6);
  });

  it("cuts an over-long line to its first keepBytes without holding the rest, and reads on after it", async () => {
    const limits = { maxLineBytes: 1_000, keepBytes: 64 };
    const long = Buffer.alloc(3_000_000, 0x61);
    const chunks = [...chunked(long.subarray(0, 200), seeded(3)), long.subarray(200), Buffer.from("\r\n{}\n")];
    const lines = await collect(chunks, limits);
    expect(lines.map((l) => [l.length, l.bytes.length, l.end])).toEqual([
      [3_000_000, 64, 3_000_002],
      [2, 2, 3_000_005],
    ]);
    // A line exactly at the limit comes whole.
    const [exact] = await collect([Buffer.alloc(1_000, 0x62)], limits);
    expect(exact?.bytes.length).toBe(1_000);
  });

  it("gives the last line without a break, and nothing for an empty stream", async () => {
    expect((await collect([Buffer.from("{}\n{ }")])).map((l) => [l.bytes.toString(), l.end])).toEqual([
      ["{}", 3],
      ["{ }", 6],
    ]);
    expect(await collect([])).toEqual([]);
    expect((await collect([Buffer.from("\n\n")])).map((l) => l.end)).toEqual([1, 2]);
  });
});
