/**
 * The pipeline benchmark's janitor: removes what a run made (service processes, databases, topics,
 * ACLs, consumer groups, the hub key, S3 objects) when the run itself could not, e.g. killed with
 * SIGKILL. It runs detached and exits once the run's state file is gone.
 */
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import type { AclEntry } from "kafkajs";
import pg from "pg";
import { REPO_ROOT } from "../../services/shared/config.ts";
import { createKafka, kafkaConnection } from "../../services/shared/kafka.ts";
import { ADMIN_PRINCIPAL } from "../../services/shared/kafka-access.ts";
import { createLogger } from "../../services/shared/logging.ts";
import { principalEnv, stackS3Client } from "../../test/support/stack.ts";
import type { StackEnv } from "../../test/support/stack.ts";
import { sleep } from "./util.ts";

export interface JanitorState {
  benchPid: number;
  adminDatabaseUrl: string;
  brokers: string[];
  databases: string[];
  topics: string[];
  groups: string[];
  /** The ACLs granted for the run's namespace (every one names the namespace's topics or groups). */
  acls: AclEntry[];
  childPids: number[];
  /** The run's topic namespace: a service process with it in its environment is ours (restarts get new pids). */
  namespace: string | null;
  hubKeyDir: string | null;
  /** Objects in the stack's bucket (the import mode's file and its receipt). */
  s3Objects: string[];
  s3: StackEnv["s3"];
}

/** Deletes objects from the stack's bucket; one that is already gone is no error. */
export async function deleteObjects(s3: StackEnv["s3"], keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const client = stackS3Client(s3);
  try {
    for (const key of keys) await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
  } finally {
    client.destroy();
  }
}

/** Service processes of this repository running with TOPIC_NAMESPACE=<namespace>. */
export function serviceProcessesOf(namespace: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "utf8").includes(`${REPO_ROOT}services/`)) continue;
      if (readFileSync(`/proc/${d}/environ`, "utf8").split("\0").includes(`TOPIC_NAMESPACE=${namespace}`)) out.push(Number(d));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")); // a zombie is dead
  } catch {
    return false;
  }
}

/** A client as the hub admin (a super user): provisioning, the raw baseline, inspection and clean-up. */
export function adminKafka(brokers: string[], clientId: string, level: "error" | "silent") {
  return createKafka({
    ...kafkaConnection({ KAFKA_BROKERS: brokers, ...principalEnv(ADMIN_PRINCIPAL) }),
    clientId,
    logger: createLogger("bench", level),
  });
}

/** `bench/pipeline.ts --janitor <state file>`: started detached by every run; exits when the state file goes. */
export async function janitor(file: string): Promise<void> {
  for (;;) {
    await sleep(1_000);
    if (!existsSync(file)) return;
    let st: JanitorState;
    try {
      st = JSON.parse(readFileSync(file, "utf8")) as JanitorState;
    } catch {
      continue; // being written
    }
    if (alive(st.benchPid)) continue;
    const pids = new Set([...st.childPids, ...(st.namespace ? serviceProcessesOf(st.namespace) : [])]);
    for (const pid of pids) {
      try {
        if (alive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`${REPO_ROOT}services/`)) process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const c = new pg.Client({ connectionString: st.adminDatabaseUrl });
    await c.connect().catch(() => undefined);
    for (const db of st.databases) await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
    await c.end().catch(() => undefined);
    const admin = adminKafka(st.brokers, "bench-pipeline-janitor", "silent").admin();
    await admin.connect().catch(() => undefined);
    if (st.topics.length) await admin.deleteTopics({ topics: st.topics }).catch(() => undefined);
    if (st.acls?.length) await admin.deleteAcls({ filters: st.acls }).catch(() => undefined);
    // Killed members keep their groups until the session timeout (6 s) passes.
    for (let attempt = 0; attempt < 6 && st.groups.length; attempt++) {
      if (attempt) await sleep(3_000);
      await admin.deleteGroups(st.groups).catch(() => undefined);
      const existing = new Set(
        (await admin.listGroups().catch(() => ({ groups: [] as { groupId: string }[] }))).groups.map((g) => g.groupId),
      );
      st.groups = st.groups.filter((g) => existing.has(g));
    }
    await admin.disconnect().catch(() => undefined);
    if (st.hubKeyDir) rmSync(st.hubKeyDir, { recursive: true, force: true });
    if (st.s3Objects?.length) await deleteObjects(st.s3, st.s3Objects).catch(() => undefined);
    rmSync(file, { force: true });
    return;
  }
}
