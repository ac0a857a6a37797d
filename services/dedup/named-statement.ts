/**
 * dedup's hot statements are named (node-postgres prepares each once per connection, so PostgreSQL
 * parses it once) and planned once: every parameter is typed ($n::type) and read through a scalar
 * subquery, so the planner never sees the values. A plan made for the values would then cost no
 * less than the plan PostgreSQL makes for unknown values, which it caches and reuses from the
 * sixth execution on instead of planning each round again. The statements are written so that
 * plan is index lookups and bounded scans whatever the sizes of the arrays.
 *
 * Invariant: one name, one constant text; no parameter without a type (it would be planned for
 * its value, and keep the cached plan from being used).
 */

export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

const TYPED = /\$(\d+)::(\w+(?:\[\])?)/g;
const UNTYPED = /\$\d+(?!\d|::)/;

export function namedStatement(name: string, text: string): NamedStatement {
  const untyped = UNTYPED.exec(text);
  if (untyped) throw new Error(`statement ${name}: parameter ${untyped[0]} has no type; write it as ${untyped[0]}::<type>`);
  return { name, text: text.replace(TYPED, "(SELECT $$$1::$2)::$2") };
}
