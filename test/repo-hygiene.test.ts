/** Secrets never in the repository: no private keys or key files are tracked. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../services/shared/config.ts";

describe("repository hygiene", () => {
  it("tracks no private keys", () => {
    const files = execFileSync("git", ["ls-files"], { cwd: REPO_ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
    expect(files.length).toBeGreaterThan(20);
    expect(files.filter((f) => /\.(pem|key|p12|pfx)$/.test(f))).toEqual([]);
    const withKeys = files.filter((f) => {
      try {
        return /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(readFileSync(`${REPO_ROOT}${f}`, "utf8"));
      } catch {
        return false;
      }
    });
    expect(withKeys).toEqual([]);
  });
});
