/**
 * A real PostgreSQL pool whose connections tell the test the text of every statement they send,
 * before sending it unchanged: for counting a round's round trips, or a relay's reads.
 */
import type { Pool, PoolClient } from "../../services/shared/postgres.ts";

export function watchedPool(pool: Pool, sent: (text: string) => void): Pool {
  return new Proxy(pool, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (prop !== "connect" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
      return async () => {
        const client = (await v.apply(target)) as PoolClient;
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        return new Proxy(client, {
          get(c, p) {
            if (p !== "query") return Reflect.get(c, p);
            return (...args: unknown[]) => {
              sent(typeof args[0] === "string" ? args[0] : String((args[0] as { text?: string }).text));
              return query(...args);
            };
          },
        });
      };
    },
  });
}
