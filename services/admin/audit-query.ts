/**
 * Reading audit.v1 back for operators: which events concern a record, a partner, a key or an
 * operator, e.g. "what was partner X sent about record Y, and when". Filters are pure.
 */
import type { AuditEvent } from "../shared/wire/records.ts";

export interface AuditFilter {
  /** The event's subject (record id, partner id, key id, ...). */
  readonly subject?: string;
  /** Action, or a prefix of it ending in "." (e.g. "feed." or "key."). */
  readonly action?: string;
  /** Events about a partner: its policy and access events, and every feed record it was sent. */
  readonly partner?: string;
  readonly actor?: string;
  readonly service?: string;
  /** Only events at or after this time (epoch ms). */
  readonly since?: number;
}

export function matchesAudit(e: AuditEvent, f: AuditFilter): boolean {
  const action = !f.action || (f.action.endsWith(".") ? e.action.startsWith(f.action) : e.action === f.action);
  const partner = !f.partner || e.detail["partnerId"] === f.partner || e.subjectId === f.partner || e.subjectId === `partner-${f.partner}`;
  return (
    action &&
    partner &&
    (!f.subject || e.subjectId === f.subject) &&
    (!f.actor || e.actor === f.actor) &&
    (!f.service || e.service === f.service) &&
    (!f.since || e.at >= f.since)
  );
}

/** One line per event, oldest first: time, service, actor, action, subject, then the details. */
export function formatAuditEvent(e: AuditEvent): string {
  const detail = Object.entries(e.detail)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return [new Date(e.at).toISOString(), e.service, e.actor, e.action, `${e.subjectKind}:${e.subjectId}`, detail].join("\t");
}
