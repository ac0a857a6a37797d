/**
 * What the force CLI tells the user about one file: the receipt (accepted, duplicates, refused by
 * reason), the file fault if the export was truncated or malformed, and the hash names it did not
 * read; the text it prints, and its exit code. Pure: no I/O.
 *
 * Invariant: a file fault is never only a count under a reason. The report says in words that the
 * file was truncated (or malformed), where, and whether anything of it was sent. Its size does not
 * grow with the file: past MAX_REPORTED_HASH_NAMES distinct names, further ones are only counted.
 */
import type { Receipt } from "../shared/wire/ingest-api.ts";
import { addToReceipt, emptyReceipt } from "../shared/wire/ingest-api.ts";
import type { FileFault } from "./formats/common.ts";
import type { SignedItem } from "./signer.ts";

export interface FileReport {
  readonly file: string;
  /** Local refusals plus, once known, the hub's outcomes. */
  receipt: Receipt;
  fault: FileFault | null;
  /** AlternativeHashes names not read, with the number of items that carried each (the first MAX_REPORTED_HASH_NAMES names). */
  readonly ignoredHashNames: Map<string, number>;
  /** Items that carried a name not read beyond those in ignoredHashNames. */
  otherIgnoredHashNames: number;
  /** Whether the CLI sent anything to the hub (false when it refused the file whole). */
  sent: boolean;
}

/** Exit codes: 0 done; 2 nothing accepted and something refused; 3 the file refused whole (nothing sent). */
export const EXIT_NOTHING_ACCEPTED = 2;
export const EXIT_FILE_REFUSED = 3;

/** Distinct AlternativeHashes names a report lists; a hostile file could otherwise make millions. */
export const MAX_REPORTED_HASH_NAMES = 100;

export function newReport(file: string): FileReport {
  return { file, receipt: emptyReceipt(), fault: null, ignoredHashNames: new Map(), otherIgnoredHashNames: 0, sent: false };
}

/** Counts what the reader said about an item before it is sent: a local refusal, a file fault, ignored hash names. */
export function noteItem(report: FileReport, item: SignedItem): void {
  if (item.ok) {
    let other = false;
    for (const name of item.ignoredHashNames ?? []) {
      const n = report.ignoredHashNames.get(name);
      if (n === undefined && report.ignoredHashNames.size >= MAX_REPORTED_HASH_NAMES) other = true;
      else report.ignoredHashNames.set(name, (n ?? 0) + 1);
    }
    if (other) report.otherIgnoredHashNames++;
    return;
  }
  if (item.fileFault) report.fault = item.fileFault;
  addToReceipt(report.receipt, [{ index: item.index, submissionId: null, status: "rejected", reason: item.reason, detail: item.detail }]);
}

function faultLines(report: FileReport): string[] {
  const f = report.fault;
  if (!f) return [];
  const what = f.truncated
    ? `FILE TRUNCATED: ${report.file} ends at byte ${f.atByte}, after ${f.completeItems} complete media items (cut off mid-export)`
    : `FILE MALFORMED: ${report.file} cannot be read past byte ${f.atByte}, after ${f.completeItems} complete media items`;
  if (f.refusedWhole) {
    return [
      `  ${what}.`,
      "  The whole file is refused: nothing of it was submitted or uploaded.",
      `  Export the file again, or run with --allow-partial to send the ${f.completeItems} complete items.`,
    ];
  }
  return [`  ${what}.`, "  Only the complete items before that point were sent (--allow-partial); the rest of the export is missing."];
}

export function reportText(title: string, report: FileReport, rejectsFile: string | null): string {
  const r = report.receipt;
  const lines = [
    title,
    `  accepted:   ${r.accepted}`,
    `  duplicates: ${r.duplicates} (already accepted earlier; not sent again)`,
    `  rejected:   ${r.rejected}`,
    ...Object.entries(r.byReason).map(([reason, n]) => `    ${reason}: ${n}`),
    ...faultLines(report),
  ];
  for (const [name, n] of report.ignoredHashNames) {
    lines.push(`  not read: AlternativeHashes "${name}" on ${n} item${n === 1 ? "" : "s"} (not an algorithm the hub takes)`);
  }
  const other = report.otherIgnoredHashNames;
  if (other > 0) {
    lines.push(
      `  not read: AlternativeHashes of other names (past the first ${MAX_REPORTED_HASH_NAMES}) on ${other} item${other === 1 ? "" : "s"}`,
    );
  }
  if (rejectsFile && r.rejected > 0) lines.push(`  rejected items and reasons: ${rejectsFile}`);
  return lines.join("\n");
}

export function exitCodeOf(report: FileReport): number {
  if (report.fault?.refusedWhole) return EXIT_FILE_REFUSED;
  const r = report.receipt;
  return r.accepted + r.duplicates === 0 && r.rejected > 0 ? EXIT_NOTHING_ACCEPTED : 0;
}
