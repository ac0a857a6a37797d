/**
 * `hashrelay migrate`: applies the hub database's shared migrations; running it again changes nothing.
 */
import type { Command } from "commander";
import { SHARED_MIGRATIONS, createPool, migrate } from "../../shared/postgres.ts";
import { ADMIN_MIGRATIONS } from "../audit-outbox.ts";
import { dbConfig } from "../cli.ts";

export function addMigrateCommand(program: Command): void {
  program
    .command("migrate")
    .description("apply the hub database migrations")
    .action(async () => {
      const pool = createPool(dbConfig().DATABASE_URL, { max: 1, applicationName: "hashrelay-admin" });
      const applied = await migrate(pool, [{ namespace: "shared", dir: SHARED_MIGRATIONS }, ADMIN_MIGRATIONS]).finally(() => pool.end());
      console.log(applied.length ? `applied ${applied.join(", ")}` : "database is up to date");
    });
}
