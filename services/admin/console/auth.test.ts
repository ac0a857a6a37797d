import { describe, expect, it } from "vitest";
import { reasonOf } from "../../shared/errors.ts";
import { CONSOLE_ROLES, ConsoleAuthenticator, FormTokens, consoleUserEntry, parseConsoleUsers } from "./auth.ts";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const PASSWORD = "correct horse battery staple";

describe("console users", () => {
  const users = parseConsoleUsers(
    [consoleUserEntry("alice", "operator", PASSWORD), consoleUserEntry("lee", "law-enforcement", `${PASSWORD}!`)].join("\n"),
  );

  it("signs in a listed user with the right password, with the role from the configuration", () => {
    const auth = new ConsoleAuthenticator(users);
    expect(auth.authenticate(basic("alice", PASSWORD))).toEqual({ name: "alice", role: "operator" });
    expect(auth.authenticate(basic("lee", `${PASSWORD}!`))).toEqual({ name: "lee", role: "law-enforcement" });
    // Remembered: the same header passes again without a derivation.
    expect(auth.authenticate(basic("alice", PASSWORD)).name).toBe("alice");
  });

  it("refuses no header, another scheme, a wrong password, an unknown user and another user's password", () => {
    const auth = new ConsoleAuthenticator(users);
    for (const header of [
      undefined,
      "Bearer abc",
      basic("alice", "wrong password!!"),
      basic("mallory", PASSWORD),
      basic("lee", PASSWORD),
      "Basic",
    ]) {
      expect(() => auth.authenticate(header), String(header)).toThrow();
      try {
        auth.authenticate(header);
      } catch (err) {
        expect(reasonOf(err)).toBe("UNAUTHENTICATED");
      }
    }
  });

  it("forgets a remembered header after the cache time", () => {
    let t = 0;
    const auth = new ConsoleAuthenticator(users, { cacheMs: 1000, now: () => t });
    auth.authenticate(basic("alice", PASSWORD));
    t = 5000;
    expect(auth.authenticate(basic("alice", PASSWORD)).name).toBe("alice");
  });

  it("refuses a bad configuration, listing every problem and never echoing a hash", () => {
    const good = consoleUserEntry("alice", "operator", PASSWORD);
    const bad = [good, good, "Bob:operator:scrypt:x:y", "carol:root:scrypt:AAAAAAAAAAAAAAAAAAAAAA==:AAAA", "dave:viewer:plain:secret"].join(
      ",",
    );
    let message = "";
    try {
      parseConsoleUsers(bad);
    } catch (err) {
      expect(reasonOf(err)).toBe("CONFIG_INVALID");
      message = (err as Error).message;
    }
    expect(message).toContain("entry 2 (alice): the name appears twice");
    expect(message).toContain("entry 3 (bad name)");
    expect(message).toContain("entry 4 (carol): role must be one of");
    expect(message).toContain("entry 5 (dave): expected name:role:scrypt");
    expect(message).not.toContain("secret");
    expect(() => parseConsoleUsers("# nobody\n")).toThrow(/no users/);
    expect(() => consoleUserEntry("alice", "operator", "short")).toThrow(/12 characters/);
  });

  it("only the law-enforcement role sees law-enforcement-only fields; the viewer has no actions", () => {
    expect(
      Object.entries(CONSOLE_ROLES)
        .filter(([, r]) => r.lawEnforcementFields)
        .map(([n]) => n),
    ).toEqual(["law-enforcement"]);
    expect(CONSOLE_ROLES.viewer.actions).toBe(false);
  });
});

describe("form tokens", () => {
  it("accept the token issued to the same user only", () => {
    const forms = new FormTokens();
    const alice = { name: "alice", role: "operator" as const };
    forms.check(alice, forms.issue(alice));
    expect(() => forms.check(alice, forms.issue({ name: "bob", role: "operator" }))).toThrow(/reload/);
    expect(() => forms.check(alice, undefined)).toThrow();
    expect(() => forms.check(alice, new FormTokens().issue(alice))).toThrow();
  });
});
