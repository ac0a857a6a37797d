/**
 * `hashrelay hashes`: what the hub knows about hash values as such. `hashes degenerate` lists the
 * perceptual values kept out of near-duplicate matching and out of every partner feed, with the
 * reason and how many distinct records carry each; values are shown as a prefix only.
 */
import type { Command } from "commander";
import { degenerateCounts, degenerateValues } from "../../dedup/degenerate-report.ts";
import { DegenerateReasonValues } from "../../shared/wire/records.ts";
import type { DegenerateReason } from "../../shared/wire/records.ts";
import { withDb } from "../cli.ts";

function reasonOption(v: string): DegenerateReason {
  const reason = DegenerateReasonValues.find((r) => r === v.toUpperCase());
  if (!reason) throw new Error(`--reason must be one of ${DegenerateReasonValues.join(", ")}, got ${JSON.stringify(v)}`);
  return reason;
}

export function addHashCommands(program: Command): void {
  const hashes = program.command("hashes").description("hash values as the hub holds them");
  hashes
    .command("degenerate")
    .description("perceptual values kept out of matching and partner feeds: algorithm, value prefix, reason, records carrying it")
    .option("--reason <reason>", `only this reason (${DegenerateReasonValues.join(", ")})`, reasonOption)
    .option("--limit <n>", "at most this many values", (v) => Number.parseInt(v, 10), 100)
    .action(async (o: { reason?: DegenerateReason; limit: number }) => {
      const { values, counts } = await withDb(async (db) => ({
        values: await degenerateValues(db, { ...(o.reason ? { reason: o.reason } : {}), limit: o.limit }),
        counts: await degenerateCounts(db),
      }));
      for (const v of values) {
        console.log(`${v.alg}\t${v.valuePrefix}\t${v.reason}\t${v.records} records\tsince ${new Date(v.firstSeenAt).toISOString()}`);
      }
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const byReason = DegenerateReasonValues.map((r) => `${r} ${counts[r] ?? 0}`).join(", ");
      console.log(`${total} degenerate values (${byReason})`);
    });
}
