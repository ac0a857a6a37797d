/**
 * The force CLI's option checks, run as a force runs it (a child process): a bad value is refused
 * with the flag named, before any file is read or anything is sent.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const CLI = fileURLToPath(new URL("./cli.ts", import.meta.url));
const base = ["submit", "no-such-file.json", "--format", "vics", "--agency", "a", "--key-id", "k", "--key", "no-such-key.pem"];

describe("force CLI options", () => {
  it.each(["abc", "0", "-3", "2.5", "10x"])("refuses --batch %s, naming the flag", (value) => {
    const run = spawnSync(process.execPath, [CLI, ...base, "--batch", value], { encoding: "utf8" });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`--batch takes a whole number from 1 up, got "${value}"`);
  });
});
