/**
 * Everything a pipeline benchmark run makes (databases, topics, consumer groups, ACLs, service
 * processes, log streams, consumers, the hub key, S3 objects), recorded as it is made, so that the
 * run removes all of it at the end, also on error or Ctrl-C, and the detached janitor can if the
 * run is killed.
 * Record a resource (and saveState) before creating it, never after.
 */
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AclEntry, Admin, Consumer } from "kafkajs";
import { REPO_ROOT } from "../../services/shared/config.ts";
import type { RecordProducer } from "../../services/shared/kafka.ts";
import type { ServiceProcess } from "../../test/support/processes.ts";
import type { StackEnv, TestDatabase } from "../../test/support/stack.ts";
import { deleteObjects, serviceProcessesOf } from "./janitor.ts";
import type { JanitorState } from "./janitor.ts";
import { log, sleep } from "./util.ts";

export interface RunResources {
  readonly dbs: TestDatabase[];
  readonly topics: string[];
  readonly groups: string[];
  readonly acls: AclEntry[];
  readonly procs: Record<string, ServiceProcess>;
  readonly logStreams: WriteStream[];
  readonly consumers: Consumer[];
  hubKeyDir: string | undefined;
  /** Keys of objects in the stack's bucket. */
  readonly objects: string[];
  /** Writes the janitor's state file: call it after each addition. */
  saveState(): void;
  /** Removes everything recorded; runs once, however often it is called. */
  cleanup(): Promise<void>;
}

/** The entry point the janitor runs as (`bench/pipeline.ts --janitor <state file>`). */
const ENTRY = fileURLToPath(new URL("../pipeline.ts", import.meta.url));

/**
 * Starts recording a run's resources: writes the first state file, starts the detached janitor,
 * and cleans up on SIGINT and SIGTERM.
 */
export function trackRun(o: { env: StackEnv; namespace: string; admin: Admin; producer: RecordProducer }): RunResources {
  const { env, namespace, admin, producer } = o;
  const stateFile = join(tmpdir(), `hashrelay-bench-pipeline-${process.pid}.json`);
  let cleaned: Promise<void> | undefined;
  const res: RunResources = {
    dbs: [],
    topics: [],
    groups: [],
    acls: [],
    procs: {},
    logStreams: [],
    consumers: [],
    hubKeyDir: undefined,
    objects: [],
    saveState: (): void => {
      const st: JanitorState = {
        benchPid: process.pid,
        adminDatabaseUrl: env.databaseUrl,
        brokers: env.brokers,
        databases: res.dbs.map((d) => new URL(d.url).pathname.slice(1)),
        topics: res.topics,
        groups: res.groups,
        acls: res.acls,
        childPids: Object.values(res.procs).flatMap((p) => (p.child.pid ? [p.child.pid] : [])),
        namespace,
        hubKeyDir: res.hubKeyDir ?? null,
        s3Objects: res.objects,
        s3: env.s3,
      };
      writeFileSync(stateFile, JSON.stringify(st));
    },
    cleanup: (): Promise<void> =>
      (cleaned ??= (async () => {
        await Promise.all(
          Object.entries(res.procs).map(async ([name, p]) => {
            const t = setTimeout(() => p.child.kill("SIGKILL"), 25_000);
            await p.kill("SIGTERM").catch((err: unknown) => log(`cleanup: stop ${name}: ${(err as Error).message}`));
            clearTimeout(t);
          }),
        );
        // A service the supervisor restarted while we stopped it would be left running: none may outlive the run.
        for (const pid of serviceProcessesOf(namespace)) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
        for (const s of res.logStreams) s.end();
        for (const c of res.consumers) await c.disconnect().catch(() => undefined);
        await producer.disconnect().catch(() => undefined);
        for (const db of res.dbs) await db.drop().catch((err: unknown) => log(`cleanup: drop database: ${(err as Error).message}`));
        if (res.topics.length) {
          await admin
            .deleteTopics({ topics: res.topics })
            .catch((err: unknown) => log(`cleanup: delete topics: ${(err as Error).message}`));
        }
        if (res.acls.length)
          await admin.deleteAcls({ filters: res.acls }).catch((err: unknown) => log(`cleanup: delete ACLs: ${(err as Error).message}`));
        // A member killed without leaving (a second signal) keeps its group non-empty for up to the session timeout (6 s).
        let left = [...res.groups];
        for (let attempt = 0; left.length && attempt < 4; attempt++) {
          if (attempt) await sleep(3_000);
          await admin.deleteGroups(left).catch(() => undefined);
          const existing = new Set(
            (await admin.listGroups().catch(() => ({ groups: [] as { groupId: string }[] }))).groups.map((g) => g.groupId),
          );
          left = left.filter((g) => existing.has(g));
        }
        if (left.length) log(`cleanup: consumer groups left behind: ${left.join(", ")}`);
        if (res.hubKeyDir) rmSync(res.hubKeyDir, { recursive: true, force: true });
        await deleteObjects(env.s3, res.objects).catch((err: unknown) => log(`cleanup: delete S3 objects: ${(err as Error).message}`));
        await admin.disconnect().catch(() => undefined);
        rmSync(stateFile, { force: true }); // the janitor sees it gone and exits
      })()),
  };
  res.saveState();
  spawn(process.execPath, [ENTRY, "--janitor", stateFile], { cwd: REPO_ROOT, detached: true, stdio: "ignore" }).unref();
  // `on`, not `once`: a second Ctrl-C while the cleanup runs must not end the process before it is done.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (cleaned) return;
      log(`bench/pipeline: ${signal}; cleaning up (databases, topics, processes)`);
      void res.cleanup().finally(() => process.exit(130));
    });
  }
  return res;
}
