/** Secrets never in the repository: no private keys or key files are tracked. */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, localStackEnv } from "../services/shared/config.ts";

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

  it("keeps the local Kafka principals' passwords in ignored files, and in no tracked one", () => {
    const dir = localStackEnv()["KAFKA_PRINCIPALS_DIR"];
    if (!dir || !existsSync(dir)) throw new Error("no local stack: run `make up` first");
    const passwords = readdirSync(dir).map((f) => readFileSync(`${dir}/${f}`, "utf8").trim());
    expect(passwords.length).toBeGreaterThan(5);
    // .stack may be a link to another checkout's stack (a worktree sharing it): git does not look
    // past a link, and ignoring the link ignores everything behind it.
    const link = `${REPO_ROOT}.stack`;
    const linked = existsSync(link) && lstatSync(link).isSymbolicLink() && dir.startsWith(`${realpathSync(link)}/`);
    // git check-ignore exits non-zero (and execFileSync throws) when the path is not ignored
    execFileSync("git", ["check-ignore", "-q", linked ? link : `${dir}/hashrelay-admin`], { cwd: REPO_ROOT });
    const files = execFileSync("git", ["ls-files"], { cwd: REPO_ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
    const leaking = files.filter((f) => {
      try {
        const text = readFileSync(`${REPO_ROOT}${f}`, "utf8");
        return passwords.some((p) => text.includes(p));
      } catch {
        return false;
      }
    });
    expect(leaking).toEqual([]);
  });
});
