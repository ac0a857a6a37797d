/**
 * `hashrelay console-user`: makes a CONSOLE_USERS entry for the operator console (a name, a role
 * and a scrypt hash of a password). The password is printed once, to stderr, and stored nowhere.
 */
import type { Command } from "commander";
import { CONSOLE_ROLES, consoleUserEntry, newConsolePassword } from "../console/auth.ts";

export function addConsoleCommands(program: Command): void {
  program
    .command("console-user")
    .description("print a CONSOLE_USERS entry for the operator console, with a new random password")
    .requiredOption("--name <name>", "the operator's name (recorded as the actor of the console's actions)")
    .requiredOption("--role <role>", `one of ${Object.keys(CONSOLE_ROLES).join(", ")}`)
    .action((o: { name: string; role: string }) => {
      const password = newConsolePassword();
      const entry = consoleUserEntry(o.name, o.role, password);
      console.error(`password for ${o.name} (shown once; give it to them out of band): ${password}`);
      console.log(entry);
    });
}
