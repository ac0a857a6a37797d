/**
 * The force CLI's report stays the same size whatever the file: AlternativeHashes names past the
 * first MAX_REPORTED_HASH_NAMES are counted, not kept, and the text still says they were not read.
 */
import { describe, expect, it } from "vitest";
import { MAX_REPORTED_HASH_NAMES, newReport, noteItem, reportText } from "./file-report.ts";
import type { SignedItem } from "./signer.ts";

function withNames(index: number, names: string[]): SignedItem {
  return { index, ok: true, submission: {} as never, original: Buffer.alloc(0), ignoredHashNames: names };
}

describe("file report", () => {
  it("lists the first AlternativeHashes names not read and counts the items with any other", () => {
    const report = newReport("export.json");
    for (let i = 0; i < MAX_REPORTED_HASH_NAMES + 50; i++) noteItem(report, withNames(i, ["SSDEEP", `X-${i}`]));
    noteItem(report, withNames(10_000, ["SSDEEP", "X-3"]));
    expect(report.ignoredHashNames.size).toBe(MAX_REPORTED_HASH_NAMES);
    expect(report.ignoredHashNames.get("SSDEEP")).toBe(MAX_REPORTED_HASH_NAMES + 51);
    expect(report.ignoredHashNames.get("X-3")).toBe(2);
    expect(report.otherIgnoredHashNames).toBe(51);
    const text = reportText("read export.json", report, null);
    expect(text).toContain('not read: AlternativeHashes "SSDEEP" on 151 items (not an algorithm the hub takes)');
    expect(text).toContain(`not read: AlternativeHashes of other names (past the first ${MAX_REPORTED_HASH_NAMES}) on 51 items`);
  });
});
