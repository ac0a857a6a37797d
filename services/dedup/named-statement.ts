/**
 * dedup's hot statements are named (node-postgres prepares each once per connection, so PostgreSQL
 * parses it once) and planned once: every typed parameter ($n::type) is read through a scalar
 * subquery, so the planner never sees the values. A plan made for the values would cost no less
 * than the plan PostgreSQL makes for unknown values, which it then caches and reuses from the
 * sixth execution on instead of planning each round again. The statements are written so that
 * plan is index lookups and bounded scans whatever the sizes of the arrays.
 *
 * Invariant: one name, one constant text.
 */

export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

export function namedStatement(name: string, text: string): NamedStatement {
  return { name, text: text.replace(/\$(\d+)::(\w+(?:\[\])?)/g, "(SELECT $$$1::$2)::$2") };
}
