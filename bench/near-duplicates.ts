/**
 * Benchmark: PDQ multi-index hashing (PdqIndex) against a brute-force scan, on seeded random digests
 * (never real hash lists).
 *
 *   node bench/near-duplicates.ts [--sizes 1000000,10000000] [--queries 2000] [--brute-queries 20] [--seed 1]
 *
 * For each size: build the index from hex strings with addBulk(), time a rebuild (compact()), then run
 * the queries (half of them a known entry with 0-31 random bits flipped, so there are real hits; half
 * fresh random hashes) and time each one. Brute force (bruteForceQuery over pre-decoded Uint32 words,
 * with early exit: the strongest naive baseline) answers the first --brute-queries of them; its answers
 * must equal the index's. Prints a table and writes bench-results/near-duplicates.json.
 *
 * Memory: hashes and tables are typed arrays outside the JS heap, so the default heap is enough; the
 * process also holds the benchmark's own copy of the data. docs/benchmarks.md has the figures per size.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PDQ_MAX_DISTANCE, PdqIndex, bruteForceQuery } from "../services/dedup/near-duplicates/pdq-index.ts";
import type { PdqEntry, PdqIndexParameters, PdqMatch } from "../services/dedup/near-duplicates/pdq-index.ts";
import {
  createRng,
  pdqNeighbour,
  pdqWordsToHex,
  randomInt,
  randomPdqHex,
  randomPdqWords,
} from "../test/support/perceptual-hash-generators.ts";

interface Args {
  sizes: number[];
  queries: number;
  bruteQueries: number;
  seed: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [1_000_000, 10_000_000], queries: 2000, bruteQueries: 20, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = (): string => {
      if (value === undefined) throw new Error(`${flag} needs a value`);
      i++;
      return value;
    };
    const positive = (s: string): number => {
      const n = Number(s.replace(/_/g, ""));
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag}: not a positive integer: ${s}`);
      return n;
    };
    if (flag === "--sizes") args.sizes = need().split(",").map(positive);
    else if (flag === "--queries") args.queries = positive(need());
    else if (flag === "--brute-queries") args.bruteQueries = positive(need());
    else if (flag === "--seed") args.seed = positive(need());
    else throw new Error(`unknown argument ${flag}; usage: --sizes 1000000,10000000 --queries 2000 --brute-queries 20 --seed 1`);
  }
  return args;
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

function percentile(sorted: Float64Array, p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function* hexEntries(words: Uint32Array, n: number): Generator<PdqEntry> {
  for (let i = 0; i < n; i++) yield { id: i, hexHash: pdqWordsToHex(words, i * 8) };
}

const sameMatches = (a: PdqMatch[], b: PdqMatch[]): boolean =>
  a.length === b.length && a.every((m, i) => m.id === b[i]!.id && m.distance === b[i]!.distance);

interface SizeResult {
  size: number;
  layout: PdqIndexParameters | null;
  buildMs: number;
  hexFormattingMs: number;
  rebuildMs: number;
  memoryBytes: number;
  bytesPerEntry: number;
  queries: number;
  queriesPerSecond: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  cpuUsPerQuery: number;
  /** Machine load (1-minute average) while the queries ran: above the core count, timings are inflated. */
  loadAverage1m: number;
  maxUs: number;
  plantedFound: string;
  meanMatches: number;
  bruteQueries: number;
  bruteQueriesPerSecond: number;
  bruteMeanMs: number;
  bruteCpuMsPerQuery: number;
  bruteAgrees: boolean;
  speedup: number;
}

type Rng = () => number;

interface BuiltIndex {
  index: PdqIndex;
  buildMs: number;
  hexFormattingMs: number;
  rebuildMs: number;
}

interface QueryTimes {
  times: Float64Array;
  answers: PdqMatch[][];
  matches: number;
  loopMs: number;
  cpu: NodeJS.CpuUsage;
  loadAverage1m: number;
}

interface BruteForceTimes {
  bruteN: number;
  bruteMs: number;
  bruteCpu: NodeJS.CpuUsage;
  agrees: boolean;
}

/** Builds the index with addBulk() from hex strings and times a rebuild, with the hex formatting timed on its own. */
function buildIndex(words: Uint32Array, n: number): BuiltIndex {
  // What the generator itself costs (formatting hex strings), to separate it from indexing.
  let t0 = process.hrtime.bigint();
  let chars = 0;
  for (const e of hexEntries(words, n)) chars += e.hexHash.length;
  const hexFormattingMs = ms(t0);
  if (chars !== n * 64) throw new Error("hex formatting went wrong");

  log(`   addBulk (decode hex + build tables)...`);
  const index = new PdqIndex({ maxDistance: PDQ_MAX_DISTANCE, expectedSize: n });
  t0 = process.hrtime.bigint();
  index.addBulk(hexEntries(words, n));
  const buildMs = ms(t0);
  t0 = process.hrtime.bigint();
  index.compact();
  const rebuildMs = ms(t0);
  return { index, buildMs, hexFormattingMs, rebuildMs };
}

/** Even queries are near a known entry (0..31 bits flipped; `planted` holds its id), odd ones fresh random hashes (-1). */
function plantQueries(rng: Rng, words: Uint32Array, n: number, count: number): { queries: string[]; planted: number[] } {
  const queries: string[] = [];
  const planted: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const target = randomInt(rng, n);
      queries.push(pdqNeighbour(rng, pdqWordsToHex(words, target * 8), randomInt(rng, PDQ_MAX_DISTANCE + 1)));
      planted.push(target);
    } else {
      queries.push(randomPdqHex(rng));
      planted.push(-1);
    }
  }
  return { queries, planted };
}

/** Warm up the JIT on other queries (near and random, so every code path is compiled). */
function warmUp(index: PdqIndex, rng: Rng, words: Uint32Array, n: number): void {
  for (let i = 0; i < 1000; i++) {
    const hex = randomPdqHex(rng);
    index.query(i % 2 === 0 ? hex : pdqNeighbour(rng, pdqWordsToHex(words, randomInt(rng, n) * 8), randomInt(rng, 32)));
  }
}

function timeQueries(index: PdqIndex, queries: string[]): QueryTimes {
  (globalThis as { gc?: () => void }).gc?.();
  const loadBefore = loadavg()[0]!;

  const times = new Float64Array(queries.length);
  const answers: PdqMatch[][] = [];
  let matches = 0;
  const cpu0 = process.cpuUsage();
  const loop0 = process.hrtime.bigint();
  for (let i = 0; i < queries.length; i++) {
    const q0 = process.hrtime.bigint();
    const res = index.query(queries[i]!);
    times[i] = Number(process.hrtime.bigint() - q0) / 1e3;
    answers.push(res);
    matches += res.length;
  }
  const loopMs = ms(loop0);
  const cpu = process.cpuUsage(cpu0);
  const loadAverage1m = Math.max(loadBefore, loadavg()[0]!);
  return { times, answers, matches, loopMs, cpu, loadAverage1m };
}

/** Every planted neighbour must be among its query's answers. */
function checkPlanted(answers: PdqMatch[][], planted: number[]): { found: number; plantedCount: number } {
  let found = 0;
  let plantedCount = 0;
  for (let i = 0; i < answers.length; i++) {
    if (planted[i]! < 0) continue;
    plantedCount++;
    if (answers[i]!.some((m) => m.id === planted[i])) found++;
  }
  if (found !== plantedCount) throw new Error(`index missed ${plantedCount - found} planted neighbours`);
  return { found, plantedCount };
}

/** Brute force answers the first `bruteQueries` queries; its answers must equal the index's. */
function timeBruteForce(
  ids: Uint32Array,
  words: Uint32Array,
  queries: string[],
  answers: PdqMatch[][],
  bruteQueries: number,
): BruteForceTimes {
  log(`   brute force on ${Math.min(bruteQueries, queries.length)} queries...`);
  const packed = { ids, words };
  const bruteN = Math.min(bruteQueries, queries.length);
  let agrees = true;
  const bruteCpu0 = process.cpuUsage();
  const b0 = process.hrtime.bigint();
  for (let i = 0; i < bruteN; i++) {
    const res = bruteForceQuery(packed, queries[i]!, PDQ_MAX_DISTANCE);
    if (!sameMatches(res, answers[i]!)) agrees = false;
  }
  const bruteMs = ms(b0);
  const bruteCpu = process.cpuUsage(bruteCpu0);
  if (!agrees) throw new Error("index and brute force disagree");
  return { bruteN, bruteMs, bruteCpu, agrees };
}

function runSize(n: number, args: Args): SizeResult {
  const rng = createRng(args.seed * 1_000_003 + n);
  log(`\n== ${n.toLocaleString("en-GB")} entries: generating seeded random hashes`);
  const words = randomPdqWords(rng, n);
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;

  const { index, buildMs, hexFormattingMs, rebuildMs } = buildIndex(words, n);
  const stats = index.stats();
  log(
    `   built in ${(buildMs / 1000).toFixed(2)} s (of which ~${(hexFormattingMs / 1000).toFixed(2)} s formatting hex); rebuild ${(rebuildMs / 1000).toFixed(2)} s; layout ${layoutText(stats.main)}`,
  );

  const { queries, planted } = plantQueries(rng, words, n, args.queries);
  warmUp(index, rng, words, n);
  const { times, answers, matches, loopMs, cpu, loadAverage1m } = timeQueries(index, queries);
  const { found, plantedCount } = checkPlanted(answers, planted);
  const sorted = times.slice().sort();
  const meanUs = times.reduce((a, b) => a + b, 0) / times.length;
  const { bruteN, bruteMs, bruteCpu, agrees } = timeBruteForce(ids, words, queries, answers, args.bruteQueries);

  const qps = queries.length / (loopMs / 1000);
  const bruteQps = bruteN / (bruteMs / 1000);
  return {
    size: n,
    layout: stats.main,
    buildMs,
    hexFormattingMs,
    rebuildMs,
    memoryBytes: index.memoryBytes(),
    bytesPerEntry: index.memoryBytes() / n,
    queries: queries.length,
    queriesPerSecond: qps,
    p50Us: percentile(sorted, 50),
    p99Us: percentile(sorted, 99),
    meanUs,
    cpuUsPerQuery: (cpu.user + cpu.system) / queries.length,
    loadAverage1m,
    maxUs: sorted[sorted.length - 1]!,
    plantedFound: `${found}/${plantedCount}`,
    meanMatches: matches / queries.length,
    bruteQueries: bruteN,
    bruteQueriesPerSecond: bruteQps,
    bruteMeanMs: bruteMs / bruteN,
    bruteCpuMsPerQuery: (bruteCpu.user + bruteCpu.system) / 1000 / bruteN,
    bruteAgrees: agrees,
    speedup: qps / bruteQps,
  };
}

const distinct = (xs: number[]): string => [...new Set(xs)].join("/");

function layoutText(p: PdqIndexParameters | null): string {
  if (p === null) return "-";
  if (p.scan) return "scan";
  return `m=${p.chunks} bits ${distinct(p.chunkBits)} r=${distinct(p.radii)} credit>=${p.minCredit}`;
}

function log(s: string): void {
  process.stderr.write(`${s}\n`);
}

function table(rows: SizeResult[]): string {
  const cols: [string, (r: SizeResult) => string][] = [
    ["entries", (r) => r.size.toLocaleString("en-GB")],
    ["layout", (r) => layoutText(r.layout)],
    ["build s", (r) => (r.buildMs / 1000).toFixed(2)],
    ["rebuild s", (r) => (r.rebuildMs / 1000).toFixed(2)],
    ["memory MB", (r) => (r.memoryBytes / 1e6).toFixed(0)],
    ["B/entry", (r) => r.bytesPerEntry.toFixed(0)],
    ["q/s", (r) => r.queriesPerSecond.toFixed(0)],
    ["p50 us", (r) => r.p50Us.toFixed(0)],
    ["p99 us", (r) => r.p99Us.toFixed(0)],
    ["cpu us/q", (r) => r.cpuUsPerQuery.toFixed(0)],
    ["planted", (r) => r.plantedFound],
    ["load", (r) => r.loadAverage1m.toFixed(1)],
    ["brute q/s", (r) => r.bruteQueriesPerSecond.toFixed(1)],
    ["brute ms/q", (r) => r.bruteMeanMs.toFixed(1)],
    ["speed-up", (r) => `${r.speedup.toFixed(0)}x`],
  ];
  const cells = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => f(r)))];
  const widths = cols.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  const line = (row: string[]): string => row.map((cell, c) => cell.padStart(widths[c]!)).join("  ");
  return [line(cells[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const results: SizeResult[] = [];
  for (const n of args.sizes) results.push(runSize(n, args));
  const out = table(results);
  process.stdout.write(
    `\nPDQ near-duplicate index (distance <= ${PDQ_MAX_DISTANCE}), ${args.queries} queries per size, brute force on ${args.bruteQueries}\n${out}\n`,
  );
  process.stdout.write(
    "build = addBulk from hex strings, including the benchmark's own hex formatting (JSON: hexFormattingMs); rebuild = compact() alone.\n" +
      `q/s, p50, p99 and brute q/s are wall-clock; cpu us/q is process CPU time per query (steadier on a shared machine); load = 1-minute load average on ${cpus().length} CPUs.\n`,
  );
  const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
  const file = join(repo, "bench-results", "near-duplicates.json");
  mkdirSync(dirname(file), { recursive: true });
  const report = {
    benchmark: "pdq-near-duplicates",
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemoryBytes: totalmem(),
    maxDistance: PDQ_MAX_DISTANCE,
    seed: args.seed,
    data: "seeded pseudo-random 256-bit digests (synthetic; no real hashes)",
    bruteForce: "bruteForceQuery over pre-decoded Uint32 words with early exit",
    results,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

main();
