/**
 * The partner's own CLI for its sink (`bin/hashrelay-sink`): inspect each feed partition, list the
 * sink's alerts, and resume a halted partition, working on the partner database only
 * (PARTNER_DATABASE_URL); the running sink notices a resume by itself (PARTNER_RESUME_POLL_MS).
 * Semantics of `resume`: operator.ts (planResume). `feedback send` is the one command that reaches
 * the hub: it signs feedback with the partner's key and produces it to the partner's feedback topic
 * as the partner's Kafka principal (feedback.ts).
 *
 * Exit codes: 0 done; 1 error or refused; `status` exits 2 when a partition is halted.
 */
import { hostname, userInfo } from "node:os";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { commonConfigShape, effectiveEnv, kafkaConfigShape, loadConfig } from "../shared/config.ts";
import { HashrelayError } from "../shared/errors.ts";
import { partnerPrincipal } from "../shared/kafka-access.ts";
import { createLogger } from "../shared/logging.ts";
import { AvroCodec } from "../shared/wire/codec.ts";
import { FALSE_POSITIVE_REASONS, timeBucketOf } from "../shared/wire/feedback.ts";
import { FeedbackKindValues } from "../shared/wire/records.ts";
import type { FeedbackKind } from "../shared/wire/records.ts";
import { feedbackConfigShape, listSentFeedback, openFeedbackSender, sendFeedback } from "./feedback.ts";
import { createPool, migrate } from "../shared/postgres.ts";
import type { Pool } from "../shared/postgres.ts";
import { formatAlerts, formatStatus, listAlerts, readStatus, resumePartition } from "./operator.ts";

const SINK_MIGRATIONS = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Exit code of `status` when at least one partition is halted. */
export const EXIT_HALTED = 2;

const configShape = {
  /** The partner's own database, the one its partner-sink uses. */
  PARTNER_DATABASE_URL: z
    .string({ error: "not set: give the partner database the sink uses (postgres://user:password@host:port/database)" })
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
};

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

function defaultOperator(): string {
  let user = process.env["USER"] ?? "unknown";
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry (containers): keep $USER */
  }
  return `${user}@${hostname()}`;
}

function intOption(name: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < min)
      throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}`);
    return Number(value);
  };
}

function dateOption(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`not an ISO 8601 time: ${value}`);
  return d;
}

async function withSinkDb<T>(work: (pool: Pool, url: string) => Promise<T>): Promise<T> {
  const { PARTNER_DATABASE_URL: url } = loadConfig("hashrelay-sink", configShape, effectiveEnv());
  const pool = createPool(url, { max: 2, applicationName: "hashrelay-sink-cli" });
  try {
    // Refuse a database the sink has never used (a wrong URL) rather than create its tables there.
    const { rows } = await pool.query<{ t: string | null }>("SELECT to_regclass('feed_state')::text AS t");
    if (!rows[0]?.t) {
      throw new HashrelayError(
        "NOT_FOUND",
        `no partner-sink tables in ${redactUrl(url)}: PARTNER_DATABASE_URL must be the database the sink uses (the sink creates them on its first start)`,
      );
    }
    // Bring the schema up to this CLI's version (the halt details of migration 003), as the sink does on start.
    await migrate(pool, [{ namespace: "partner-sink", dir: SINK_MIGRATIONS }]);
    return await work(pool, url);
  } finally {
    await pool.end();
  }
}

const feedbackCliShape = {
  ...configShape,
  ...kafkaConfigShape,
  ...feedbackConfigShape,
  TOPIC_NAMESPACE: commonConfigShape.TOPIC_NAMESPACE,
  PARTNER_ID: z.string({ error: "not set: give this partner's id" }).regex(/^[a-z0-9][a-z0-9-]{1,62}$/),
};

/** Sends one feedback record as this partner (its key, its Kafka principal, its database). */
async function sendFromCli(request: Parameters<typeof sendFeedback>[2]) {
  const raw = effectiveEnv();
  const partnerId = raw["PARTNER_ID"] ?? "";
  const env = effectiveEnv(process.env, /^[a-z0-9][a-z0-9-]{1,62}$/.test(partnerId) ? partnerPrincipal(partnerId) : undefined);
  const config = loadConfig("hashrelay-sink", feedbackCliShape, env);
  const sender = await openFeedbackSender(config, new AvroCodec(), createLogger("hashrelay-sink", "warn"));
  if (!sender) throw new HashrelayError("CONFIG_INVALID", "no feedback key: set PARTNER_FEEDBACK_KEY_ID and PARTNER_FEEDBACK_KEY_FILE");
  try {
    return await withSinkDb((pool) => sendFeedback(pool, sender, request));
  } finally {
    await sender.producer.disconnect();
  }
}

function addFeedbackCommands(program: Command): void {
  const feedback = program.command("feedback").description("signed feedback to the hub about records this partner received");
  feedback
    .command("send")
    .description(
      "sign a feedback record with PARTNER_FEEDBACK_KEY_FILE and send it to the hub (feedback.<partner>.v1). " +
        "MATCHED takes --matches and --day; FALSE_POSITIVE takes --reason and optionally --text (kept at the hub, never shared)",
    )
    .requiredOption("--record-ref <ref>", "the recordRef of the feed record (as a lookup returns it)")
    .requiredOption("--kind <kind>", FeedbackKindValues.join(" | "))
    .option("--matches <n>", "MATCHED: how many matches that day", intOption("--matches", 1))
    .option("--day <yyyy-mm-dd>", "MATCHED: the UTC day of the matches (default today)")
    .option("--reason <code>", `FALSE_POSITIVE: ${FALSE_POSITIVE_REASONS.join(" | ")}`)
    .option("--text <note>", "FALSE_POSITIVE: a note for the grading authority (at most 1000 characters; no user data)")
    .option("--feedback-id <uuid>", "to retry a send: the id the first attempt printed")
    .action(
      async (o: {
        recordRef: string;
        kind: string;
        matches?: number;
        day?: string;
        reason?: string;
        text?: string;
        feedbackId?: string;
      }) => {
        if (!(FeedbackKindValues as readonly string[]).includes(o.kind)) {
          throw new InvalidArgumentError(`--kind must be one of ${FeedbackKindValues.join(", ")}`);
        }
        const kind = o.kind as FeedbackKind;
        const sent = await sendFromCli({
          recordRef: o.recordRef,
          kind,
          matchCount: kind === "MATCHED" ? (o.matches ?? 1) : null,
          timeBucket: kind === "MATCHED" ? (o.day ?? timeBucketOf(Date.now())) : null,
          reasonCode: o.reason ?? null,
          freeText: o.text ?? null,
          ...(o.feedbackId ? { feedbackId: o.feedbackId } : {}),
        });
        console.log(`${sent.status}\t${sent.feedbackId}`);
      },
    );
  feedback
    .command("list")
    .description("feedback this partner has signed, newest first (sent_at empty: not yet in Kafka; send again with --feedback-id)")
    .option("--limit <n>", "at most this many", intOption("--limit", 1), 50)
    .action(async (o: { limit: number }) => {
      for (const f of await withSinkDb((pool) => listSentFeedback(pool, o.limit))) {
        console.log(`${f.feedbackId}\t${f.kind}\t${f.recordRef}\t${f.createdAt.toISOString()}\t${f.sentAt?.toISOString() ?? "NOT SENT"}`);
      }
    });
}

export function buildSinkCli(): Command {
  const program = new Command("hashrelay-sink")
    .description("inspect and resume this partner's hashrelay sink (its own database: PARTNER_DATABASE_URL)")
    .showHelpAfterError();

  program
    .command("status")
    .description(
      `per feed partition: last applied seq, chain head, halt, bootstrap seq, alerts; totals. Exits ${EXIT_HALTED} when a partition is halted`,
    )
    .option("--json", "machine-readable output")
    .action(async (o: { json?: boolean }) => {
      const status = await withSinkDb(async (pool, url) => ({ database: redactUrl(url), ...(await readStatus(pool)) }));
      if (o.json) console.log(JSON.stringify(status, null, 2));
      else console.log(`partner database: ${status.database}\n${formatStatus(status)}`);
      if (status.halted.length) process.exitCode = EXIT_HALTED;
    });

  program
    .command("alerts")
    .description("the sink's alerts (refused records, halts, resumes), newest last")
    .option("--partition <n>", "only this feed partition", intOption("--partition", 0))
    .option("--since <time>", "only alerts at or after this ISO 8601 time", dateOption)
    .option("--limit <n>", "at most this many (the newest)", intOption("--limit", 1), 100)
    .option("--json", "machine-readable output")
    .action(async (o: { partition?: number; since?: Date; limit: number; json?: boolean }) => {
      const alerts = await withSinkDb((pool) =>
        listAlerts(pool, {
          limit: o.limit,
          ...(o.partition !== undefined ? { partition: o.partition } : {}),
          ...(o.since ? { since: o.since } : {}),
        }),
      );
      console.log(o.json ? JSON.stringify(alerts, null, 2) : formatAlerts(alerts));
    });

  program
    .command("resume")
    .description(
      "clear a partition's halt so the sink goes on from the halting record. A SEQ_GAP halt needs --accept-gap (the missing seqs are skipped for good); " +
        "a CHAIN_BROKEN halt needs --accept-chain-break (re-bootstrapping is recommended instead). Every record is still verified, hub signature first",
    )
    .requiredOption("--partition <n>", "the halted feed partition", intOption("--partition", 0))
    .requiredOption("--reason <why>", "why it is resumed (recorded in sink_alerts)")
    .option("--accept-gap", "after a SEQ_GAP: skip the seqs that never arrived and continue with the halting record")
    .option("--accept-chain-break", "after a CHAIN_BROKEN: adopt the hub's chain at the halting record, keeping the rows applied so far")
    .option("--operator <name>", "who resumes it (recorded in sink_alerts)", defaultOperator())
    .action(async (o: { partition: number; reason: string; acceptGap?: boolean; acceptChainBreak?: boolean; operator: string }) => {
      const plan = await withSinkDb((pool) =>
        resumePartition(pool, o.partition, {
          why: o.reason,
          operator: o.operator,
          acceptGap: o.acceptGap === true,
          acceptChainBreak: o.acceptChainBreak === true,
        }),
      );
      if (plan.kind === "refuse") {
        console.error(`hashrelay-sink: resume refused: ${plan.message}`);
        process.exitCode = 1;
        return;
      }
      console.log(
        `${plan.summary}\nrecorded in sink_alerts as RESUMED: ${plan.alert.detail}\nthe running sink picks the partition up again within PARTNER_RESUME_POLL_MS (default 2 s); no restart needed`,
      );
    });

  addFeedbackCommands(program);
  return program;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildSinkCli()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      const message = err instanceof HashrelayError ? `[${err.reason}] ${err.detail}` : err instanceof Error ? err.message : String(err);
      console.error(`hashrelay-sink: ${message}`);
      process.exitCode = 1;
    });
}
