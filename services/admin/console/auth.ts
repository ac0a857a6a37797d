/**
 * Who may use the console, and what each role may see and do. Operators sign in with HTTP Basic
 * credentials listed in the console's configuration (a name, a role and a scrypt hash of the
 * password; never the password itself). A role is one entry in CONSOLE_ROLES: whether it may run
 * the actions the admin CLI has (a DLQ re-drive) and whether it may see the law-enforcement-only
 * fields of a record (LAW_ENFORCEMENT_ONLY_FIELDS: case references, series, victim and offender
 * flags, grader references, the contributing agencies). A role without them never gets them from
 * the reads: views are built from what the role is entitled to, not hidden afterwards.
 */
import { createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import { ConfigError, HashrelayError } from "../../shared/errors.ts";

export interface ConsoleRole {
  readonly description: string;
  /** May run the CLI's actions (DLQ re-drive) from the console. */
  readonly actions: boolean;
  /** May see law-enforcement-only fields and contributing agencies. */
  readonly lawEnforcementFields: boolean;
}

export const CONSOLE_ROLES = {
  viewer: { description: "reads the console; no actions, no law-enforcement-only fields", actions: false, lawEnforcementFields: false },
  operator: {
    description: "reads the console and re-drives the DLQ; no law-enforcement-only fields",
    actions: true,
    lawEnforcementFields: false,
  },
  "law-enforcement": {
    description: "an operator who also sees law-enforcement-only fields and contributing agencies",
    actions: true,
    lawEnforcementFields: true,
  },
} as const satisfies Record<string, ConsoleRole>;

export type ConsoleRoleName = keyof typeof CONSOLE_ROLES;

export interface ConsoleUser {
  readonly name: string;
  readonly role: ConsoleRoleName;
}

interface StoredUser extends ConsoleUser {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const SCRYPT_KEYLEN = 32;
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The entry for CONSOLE_USERS: `name:role:scrypt:<salt base64>:<hash base64>`. */
export function consoleUserEntry(name: string, role: string, password: string): string {
  if (!NAME.test(name)) throw new ConfigError(`user name ${JSON.stringify(name)} must match ${NAME.source}`);
  if (!(role in CONSOLE_ROLES))
    throw new ConfigError(`role ${JSON.stringify(role)} is not one of ${Object.keys(CONSOLE_ROLES).join(", ")}`);
  if (password.length < 12) throw new ConfigError("a console password needs at least 12 characters");
  const salt = randomBytes(16);
  return `${name}:${role}:scrypt:${salt.toString("base64")}:${scryptSync(password, salt, SCRYPT_KEYLEN).toString("base64")}`;
}

/** A random password for a new user (24 bytes, base64url). */
export const newConsolePassword = (): string => randomBytes(24).toString("base64url");

/**
 * Parses CONSOLE_USERS (entries separated by commas or new lines; `#` starts a comment line).
 * Every problem is listed at once, naming the entry by position, never echoing a hash.
 */
export function parseConsoleUsers(text: string): StoredUser[] {
  const problems: string[] = [];
  const users: StoredUser[] = [];
  const entries = text
    .split(/[\n,]/)
    .map((e) => e.trim())
    .filter((e) => e && !e.startsWith("#"));
  entries.forEach((entry, i) => {
    const [name = "", role = "", scheme, salt, hash, ...rest] = entry.split(":");
    const where = `entry ${i + 1} (${NAME.test(name) ? name : "bad name"})`;
    if (!NAME.test(name)) problems.push(`${where}: the name must match ${NAME.source}`);
    else if (users.some((u) => u.name === name)) problems.push(`${where}: the name appears twice`);
    if (!(role in CONSOLE_ROLES)) problems.push(`${where}: role must be one of ${Object.keys(CONSOLE_ROLES).join(", ")}`);
    const saltBytes = Buffer.from(salt ?? "", "base64");
    const hashBytes = Buffer.from(hash ?? "", "base64");
    if (scheme !== "scrypt" || rest.length || saltBytes.length < 16 || hashBytes.length !== SCRYPT_KEYLEN) {
      problems.push(`${where}: expected name:role:scrypt:<salt base64>:<hash base64> (bin/hashrelay console-user makes one)`);
    }
    users.push({ name, role: role as ConsoleRoleName, salt: saltBytes, hash: hashBytes });
  });
  if (entries.length === 0) problems.push("no users: the console admits nobody without one (bin/hashrelay console-user makes one)");
  if (problems.length) throw new ConfigError(`CONSOLE_USERS is invalid:\n  ${problems.join("\n  ")}`);
  return users;
}

/** Refused credentials: the edge answers 401 with a Basic challenge. */
export class NotSignedInError extends HashrelayError {
  constructor(message: string) {
    super("UNAUTHENTICATED", message);
  }
}

/** A signed-in user asked for what the role does not allow: 403. */
export class ForbiddenError extends HashrelayError {
  constructor(message: string) {
    super("FORBIDDEN", message);
  }
}

/**
 * Checks Basic credentials. scrypt is slow on purpose, so a header that passed is remembered (by
 * its SHA-256, never the password) for `cacheMs`; a page's several requests cost one derivation.
 */
export class ConsoleAuthenticator {
  private readonly users: ReadonlyMap<string, StoredUser>;
  private readonly passed = new Map<string, { user: ConsoleUser; until: number }>();
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(users: readonly StoredUser[], options: { cacheMs?: number; now?: () => number } = {}) {
    this.users = new Map(users.map((u) => [u.name, u]));
    this.cacheMs = options.cacheMs ?? 300_000;
    this.now = options.now ?? Date.now;
  }

  authenticate(authorization: string | undefined): ConsoleUser {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "");
    if (!m) throw new NotSignedInError("sign in with an operator's console credentials");
    const key = createHash("sha256")
      .update(m[1] as string)
      .digest("hex");
    const hit = this.passed.get(key);
    if (hit && hit.until > this.now()) return hit.user;
    const decoded = Buffer.from(m[1] as string, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const stored = colon > 0 ? this.users.get(decoded.slice(0, colon)) : undefined;
    // Derive even for an unknown name, so that the answer's timing does not tell names apart.
    const candidate = scryptSync(decoded.slice(colon + 1), stored?.salt ?? Buffer.alloc(16), SCRYPT_KEYLEN);
    if (!stored || !timingSafeEqual(candidate, stored.hash)) throw new NotSignedInError("unknown user or wrong password");
    const user = { name: stored.name, role: stored.role };
    this.passed.set(key, { user, until: this.now() + this.cacheMs });
    return user;
  }
}

export const roleOf = (user: ConsoleUser): ConsoleRole => CONSOLE_ROLES[user.role];

/**
 * A form's anti-forgery token: an HMAC of the user's name under a secret drawn at start-up. Basic
 * credentials ride along on any request the browser makes, a forged cross-site form post too; the
 * token is what such a form cannot know.
 */
export class FormTokens {
  private readonly secret: Buffer;
  constructor(secret: Buffer = randomBytes(32)) {
    this.secret = secret;
  }
  issue(user: ConsoleUser): string {
    return createHmac("sha256", this.secret).update(`console-form:${user.name}`).digest("base64url");
  }
  check(user: ConsoleUser, token: unknown): void {
    const want = Buffer.from(this.issue(user));
    const got = Buffer.from(typeof token === "string" ? token : "");
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw new ForbiddenError("the form is stale or was not sent by this console; reload the page");
  }
}
