/**
 * A PostgreSQL pool stand-in for code whose queries a test answers itself (exports.ts for the test
 * vectors): `answer` gives the rows of a SELECT; DECLARE ... CURSOR FOR, FETCH and CLOSE are played
 * over those rows as the server would; BEGIN, COMMIT, ROLLBACK, advisory locks and the writes the
 * caller lists in `writes` answer with no rows. Any other statement throws, so a query the test did
 * not expect is an error rather than an empty result.
 */
import type { Pool } from "../../services/shared/postgres.ts";

type Rows = { rows: Record<string, unknown>[] };

export function standInPool(answer: (sql: string) => Rows | null, writes: readonly RegExp[] = []): Pool {
  const cursors = new Map<string, Record<string, unknown>[]>();
  const query = async (sql: string): Promise<Rows> => {
    const declared = /^DECLARE (\S+) NO SCROLL CURSOR FOR ([\s\S]*)$/.exec(sql);
    if (declared) {
      cursors.set(declared[1] as string, [...(answered(declared[2] as string).rows ?? [])]);
      return { rows: [] };
    }
    const fetch = /^FETCH (\d+) FROM (\S+)$/.exec(sql);
    if (fetch) return { rows: (cursors.get(fetch[2] as string) ?? []).splice(0, Number(fetch[1])) };
    const close = /^CLOSE (\S+)$/.exec(sql);
    if (close) {
      cursors.delete(close[1] as string);
      return { rows: [] };
    }
    if (/^(BEGIN|COMMIT|ROLLBACK)\b/.test(sql) || /pg_advisory(_xact)?_(un)?lock/.test(sql)) return { rows: [] };
    if (writes.some((w) => w.test(sql))) return { rows: [] };
    return answered(sql);
  };
  const answered = (sql: string): Rows => {
    const rows = answer(sql);
    if (!rows) throw new Error(`stand-in pool: unexpected statement ${sql.replace(/\s+/g, " ").slice(0, 120)}`);
    return rows;
  };
  const client = { query, release() {} };
  return { query, connect: async () => client } as unknown as Pool;
}

/** The writes exports.ts makes (the export's record, the delta's log trim): nothing to answer. */
export const EXPORT_WRITES: readonly RegExp[] = [/^INSERT INTO feed_exports\b/, /^DELETE FROM feed_log\b/];
