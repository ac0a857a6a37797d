/**
 * Prints the failed tests of vitest JSON reports (make test writes them to .stack/test-results/),
 * one short block each, so that the last lines of a CI log name what failed and why even when
 * unhandled-error traces and stack shutdown messages came after vitest's own summary.
 * Usage: node test/support/failures.ts <report.json>...
 */
import { existsSync, readFileSync } from "node:fs";

interface AssertionResult {
  readonly fullName: string;
  readonly status: string;
  readonly failureMessages?: readonly string[];
}
interface FileResult {
  readonly name: string;
  readonly status: string;
  readonly message?: string;
  readonly assertionResults: readonly AssertionResult[];
}
interface Report {
  readonly numFailedTests: number;
  readonly numTotalTests: number;
  readonly testResults: readonly FileResult[];
}

function firstLines(text: string, n: number): string {
  // vitest colours its messages; a CI log reads better without the escapes
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the colour codes being removed
  const plain = text.replace(/\u001b\[[0-9;]*m/g, "");
  return plain
    .split("\n")
    .filter((l) => l.trim())
    .slice(0, n)
    .map((l) => `      ${l.trim().slice(0, 300)}`)
    .join("\n");
}

let failed = 0;
for (const path of process.argv.slice(2)) {
  if (!existsSync(path)) {
    console.log(`test summary: no report at ${path} (that pass did not run)`);
    continue;
  }
  const report = JSON.parse(readFileSync(path, "utf8")) as Report;
  console.log(`test summary: ${path}: ${report.numTotalTests - report.numFailedTests}/${report.numTotalTests} passed`);
  for (const file of report.testResults) {
    const name = file.name.replace(`${process.cwd()}/`, "");
    if (file.status === "failed" && file.message) {
      failed++;
      console.log(`  FAILED ${name} (file)\n${firstLines(file.message, 4)}`);
    }
    for (const test of file.assertionResults.filter((t) => t.status === "failed")) {
      failed++;
      console.log(`  FAILED ${name} > ${test.fullName}\n${firstLines((test.failureMessages ?? []).join("\n"), 4)}`);
    }
  }
}
if (failed === 0) console.log("test summary: no failed tests recorded (a failure elsewhere is in the log above)");
