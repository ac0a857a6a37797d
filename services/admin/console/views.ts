/**
 * The console's pages, rendered on the server from what reads.ts gathered: plain HTML and one
 * stylesheet from this package, no script. Every value goes through html.ts's escaping. Figures
 * carry `data-figure` attributes naming what they count, so a test (or a scraper) reads them back
 * without parsing prose. Pure: the same input renders the same page.
 */
import type { KeyCoverage } from "../../shared/pipeline-state.ts";
import type { RedriveReport } from "../redrive.ts";
import type { ConsoleRole, ConsoleUser } from "./auth.ts";
import { html } from "./html.ts";
import type { Html, HtmlValue } from "./html.ts";
import { keyState, partnerAlerts, totalLag } from "./overview.ts";
import type { AlertThresholds, Disclosure, DlqGroup, KeyRow, PartnerStatus, VisibleRecord } from "./overview.ts";
import type { Part, PipelineStatus, RejectionRow } from "./reads.ts";

export interface PageContext {
  readonly user: ConsoleUser;
  readonly role: ConsoleRole;
  readonly namespace: string;
  readonly now: Date;
}

const iso = (ms: number | Date | null | undefined): string =>
  ms === null || ms === undefined ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const figure = (name: string, value: number | string): Html => html`<span class="figure" data-figure="${name}">${value}</span>`;
const unavailable = (error: string): Html => html`<span class="unavailable" title="${error}">unavailable</span>`;
function partValue<T>(p: Part<T> | null, show: (v: T) => HtmlValue): HtmlValue {
  if (p === null) return html`<span class="na">-</span>`;
  return p.ok ? show(p.value) : unavailable(p.error);
}
const seconds = (s: number): string =>
  Number.isFinite(s) ? (s >= 86_400 ? `${(s / 86_400).toFixed(1)} days` : `${Math.round(s)} s`) : "no end";

export function layout(ctx: PageContext, title: string, body: HtmlValue): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · hashrelay console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/console.css"></head>
<body><header><strong>hashrelay hub console</strong>${ctx.namespace ? html` <span class="ns">namespace ${ctx.namespace}</span>` : ""}
<nav><a href="/">Overview</a> <a href="/dlq">Dead letters</a> <a href="/keys">Keys</a></nav>
<form class="lookup" method="get" action="/lookup"><label>Where is this hash <input name="hash" size="48" placeholder="md5, sha1, sha256, pdq hex or photodna base64" required></label> <button>Look up</button></form>
<span class="user" data-user="${ctx.user.name}" data-role="${ctx.user.role}">${ctx.user.name} (${ctx.user.role})</span></header>
<main><h1>${title}</h1>${body}</main>
<footer>Read at ${iso(ctx.now)}. Hashes and metadata only; everything shown here is audited where it is changed.</footer></body></html>`;
}

export function overviewPage(ctx: PageContext, pipeline: PipelineStatus, partners: readonly PartnerStatus[], t: AlertThresholds): Html {
  return layout(ctx, "Overview", [pipelineSection(pipeline), partnersSection(partners, t)]);
}

function pipelineSection(p: PipelineStatus): Html {
  const rows = p.stages.map((s) => {
    const lag = s.lag === null ? null : s.lag.ok ? { ok: true as const, value: s.lag.value.reduce((n, x) => n + x.lag, 0) } : s.lag;
    return html`<tr data-stage="${s.name}"><th>${s.name}</th><td>${s.input}</td>
<td class="num">${partValue(s.last5m, (v) => figure(`${s.name}.last5m`, v))}</td>
<td class="num">${partValue(s.lastHour, (v) => figure(`${s.name}.lastHour`, v))}</td>
<td class="num">${s.perSecond === null ? html`<span class="na" title="needs two readings a second or more apart">-</span>` : figure(`${s.name}.perSecond`, s.perSecond.toFixed(1))}</td>
<td class="num">${partValue(lag, (v) => html`<span class="${v > 0 ? "warn" : "ok"}">${figure(`${s.name}.lag`, v)}</span>`)}</td>
<td>${s.lag?.ok ? s.lag.value.map((x) => html`<span class="part">p${x.partition}: ${x.next}/${x.end}</span> `) : ""}</td>
<td class="num">${partValue(s.outbox, (o) => html`${figure(`${s.name}.outbox`, o.messages)}${o.messages ? html` (oldest ${Math.round(o.oldestAgeSeconds)} s)` : ""}`)}</td></tr>`;
  });
  return html`<section id="pipeline"><h2>Pipeline</h2>
<table><thead><tr><th>stage</th><th>takes in</th><th>last 5 min</th><th>last hour</th><th>msg/s (1 min)</th><th>lag</th><th>partitions (next/end)</th><th>outbox</th></tr></thead>
<tbody>${rows}</tbody></table>
<p>Canonical records: ${partValue(p.canonicalRecords, (c) => html`${figure("records.live", c.live)} live, ${figure("records.withdrawn", c.withdrawn)} withdrawn`)}.
Dead-letter topic: ${partValue(p.deadLetter, (n) => html`${figure("dlq.depth", n)} messages`)} (<a href="/dlq">by reason</a>).</p>
<p class="note">Last 5 min / last hour: submissions received (ingest) and applied (dedup), from their tables. msg/s: the change in the stage's stored offsets since the console's readings of the last minute.</p></section>`;
}

function partnersSection(partners: readonly PartnerStatus[], t: AlertThresholds): Html {
  const rows = partners.map((p) => {
    const pol = p.listing.policy;
    const alerts = partnerAlerts(p, t);
    const lag = totalLag(p.lag);
    return html`<tr data-partner="${p.partnerId}"><th>${p.partnerId}<div class="sub">${p.name}</div></th>
<td>v${pol.version} · ${pol.scheme} · UK ${pol.categories.join(", ")} · min ${pol.minGradingStatus}<div class="sub">${pol.algorithms.join(", ")} · ${pol.delivery} · ${pol.feedPartitions} partitions${pol.extraFields.length ? ` · extras ${pol.extraFields.join(", ")}` : ""}</div></td>
<td>${p.heads.map((h) => html`<span class="part">p${h.partition}: ${figure(`${p.partnerId}.head.p${h.partition}`, h.lastSeq)}</span> `)}</td>
<td class="num">${figure(`${p.partnerId}.holdings`, p.holdings)}</td>
<td class="num">${lag === null ? html`<span class="na">${pol.delivery === "s3" ? "S3 only" : "-"}</span>` : html`<span class="${lag > 0 ? "warn" : "ok"}">${figure(`${p.partnerId}.lag`, lag)}</span>`}
${p.lag ? html`<div class="sub">${p.lag.partitions.map((x) => `p${x.partition} ${x.state}`).join(", ")}</div>` : ""}</td>
<td>${p.exportStatus ? html`${Number.isFinite(p.exportStatus.ageSeconds) ? `${Math.round(p.exportStatus.ageSeconds)} s ago` : "none yet"}<div class="sub">${p.exportStatus.pendingRecords} pending</div>` : html`<span class="na">-</span>`}</td>
<td class="num">${p.unmappable}</td>
<td>${alerts.length ? html`<ul class="alerts" data-alerts="${alerts.length}">${alerts.map((a) => html`<li>${a}</li>`)}</ul>` : html`<span class="ok" data-alerts="0">none</span>`}</td></tr>`;
  });
  return html`<section id="partners"><h2>Partners</h2>
<table><thead><tr><th>partner</th><th>policy</th><th>feed head seq</th><th>holds</th><th>lag</th><th>S3 export</th><th>unmappable</th><th>alerts</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="8">no partner has a policy</td></tr>`}</tbody></table>
<p class="note">Lag: feed records the partner's sink has not applied, from the offsets it commits. Alerts: lag over ${t.partnerLag}, records lost to retention, suspension, an S3 export older than ${t.exportMaxAgeSeconds || "(exports off)"} s.</p></section>`;
}

export function dlqPage(
  ctx: PageContext,
  groups: readonly DlqGroup[],
  recent: readonly RejectionRow[],
  formToken: string,
  total: number,
): Html {
  const rows = groups.map(
    (g) => html`<tr data-reason="${g.reason}" data-service="${g.service}"><th>${g.reason}</th><td>${g.service}</td>
<td class="num">${figure(`dlq.${g.reason}.${g.service}`, g.count)}</td><td>${iso(g.oldest)}</td><td>${iso(g.newest)}</td>
<td>${ctx.role.actions ? redriveForm(g, formToken) : html`<span class="na" title="your role has no actions">-</span>`}</td></tr>`,
  );
  const latest = recent.map(
    (r) =>
      html`<tr><td>${iso(r.rejectedAt)}</td><td>${r.service}</td><td>${r.reason}</td><td>${r.channel ?? "-"}</td><td>${r.agencyId ?? "-"}</td><td class="detail">${r.detail.slice(0, 200)}</td></tr>`,
  );
  return layout(
    ctx,
    "Dead letters",
    html`<section id="dlq"><p>${figure("dlq.total", total)} rejections on the dead-letter topic, by reason and the service that refused them.</p>
<table><thead><tr><th>reason</th><th>refused by</th><th>count</th><th>oldest</th><th>newest</th><th>action</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="6">the dead-letter topic is empty</td></tr>`}</tbody></table>
<p class="note">Re-drive once the cause is fixed (a key registered, an agency added): as <code>bin/hashrelay dlq redrive --reason R --service S</code>, dedup-stage rejections go back to dedup and ingest-stage ones through ingest's checks again; nothing skips a check. It is recorded on audit.v1 as <code>dlq.redriven</code> with your name.</p>
<h2>Latest ${recent.length}</h2><table><thead><tr><th>time</th><th>service</th><th>reason</th><th>channel</th><th>agency</th><th>detail</th></tr></thead><tbody>${latest}</tbody></table></section>`,
  );
}

function redriveForm(g: DlqGroup, token: string): Html {
  return html`<form method="post" action="/dlq/redrive"><input type="hidden" name="reason" value="${g.reason}"><input type="hidden" name="service" value="${g.service}"><input type="hidden" name="token" value="${token}"><button>Re-drive ${g.count}</button></form>`;
}

export function redrivePage(ctx: PageContext, filter: { reason: string; service: string }, report: RedriveReport, audit: string): Html {
  return layout(
    ctx,
    "Re-drive done",
    html`<section id="redrive"><p>Rejections with reason <code>${filter.reason}</code> from <code>${filter.service}</code>: matched ${figure("redrive.matched", report.matched)};
${figure("redrive.republished", report.republished)} sent back to dedup; ${report.readmitted.accepted} re-admitted by ingest (${report.readmitted.duplicates} duplicates, ${report.readmitted.rejected} refused again); ${report.skipped} not re-drivable.</p>
<p>${audit}</p><p><a href="/dlq">Back to the dead letters</a></p></section>`,
  );
}

export function keysPage(
  ctx: PageContext,
  keys: readonly KeyRow[],
  coverage: { agency: Part<KeyCoverage>; hub: Part<KeyCoverage> },
  warningDays: number,
): Html {
  const cov = (kind: string, c: Part<KeyCoverage>) =>
    html`<li>${kind} keys: ${partValue(c, (v) => html`${v.owners} owners, ${figure(`keys.${kind}.uncovered`, v.ownersWithoutValidKey)} without a valid key; the first owner runs out in ${seconds(v.expirySeconds)}`)}</li>`;
  const rows = keys.map((k) => {
    const state = keyState(k, ctx.now, warningDays);
    return html`<tr data-key="${k.keyId}" data-state="${state}"><td><code>${k.keyId}</code></td><td>${k.ownerKind}</td><td>${k.ownerId}</td><td>${iso(k.validFrom)}</td><td>${k.validUntil ? iso(k.validUntil) : "open"}</td><td>${k.revokedAt ? iso(k.revokedAt) : "-"}</td><td class="${state === "valid" ? "ok" : "warn"}">${state}</td></tr>`;
  });
  return layout(
    ctx,
    "Keys",
    html`<section id="keys"><ul>${cov("agency", coverage.agency)}${cov("hub", coverage.hub)}</ul>
<table><thead><tr><th>key</th><th>owner kind</th><th>owner</th><th>valid from</th><th>valid until</th><th>revoked</th><th>state</th></tr></thead><tbody>${rows}</tbody></table>
<p class="note">"expiring": ends within ${warningDays} days. Rotate with <code>bin/hashrelay keys generate</code> and <code>keys register</code>.</p></section>`,
  );
}

export interface LookupResult {
  readonly input: string;
  /** null: the input is no hash value the hub takes. */
  readonly algs: readonly string[] | null;
  readonly records: readonly VisibleRecord[];
  readonly disclosures: Part<readonly Disclosure[]> | null;
}

export function lookupPage(ctx: PageContext, r: LookupResult): Html {
  let body: HtmlValue;
  if (r.algs === null)
    body = html`<p class="warn" data-lookup="invalid">Not a hash value the hub takes: md5 (32 hex), sha1 (40), sha256 or pdq (64), photodna (base64 of 144 bytes).</p>`;
  else if (r.records.length === 0) body = html`<p data-lookup="none">No canonical record holds this ${r.algs.join(" or ")} value.</p>`;
  else body = [r.records.map((rec) => recordSection(ctx, rec)), disclosuresSection(r.disclosures)];
  return layout(ctx, "Where is this hash", html`<p>Looked up <code class="hash">${r.input}</code>.</p>${body}`);
}

function recordSection(ctx: PageContext, rec: VisibleRecord): Html {
  const g = rec.grading;
  const le = ctx.role.lawEnforcementFields;
  return html`<section class="record" data-record="${rec.recordId}"><h2>Record <code>${rec.recordId}</code></h2>
<dl><dt>revision</dt><dd>${rec.revision}</dd><dt>state</dt><dd>${rec.deleted ? (rec.mergedInto ? html`merged into <code>${rec.mergedInto}</code>` : "withdrawn") : "live"}</dd>
<dt>content</dt><dd>${rec.contentType}</dd><dt>first seen</dt><dd>${iso(rec.firstSeenAt)}</dd><dt>updated</dt><dd>${iso(rec.updatedAt)}</dd>
<dt>grading</dt><dd>${g ? `UK ${g.uk}${g.ics ? ` · ICS ${g.ics}` : ""} · ${g.status} · ${g.confirmations} confirmations${g.baseline ? " · baseline" : ""}` : "not yet distributed"}</dd></dl>
<h3>Hashes</h3><ul>${rec.hashes.map((h) => html`<li>${h.alg} <code class="hash">${h.value}</code>${h.quality !== null ? ` (quality ${h.quality})` : ""}</li>`)}</ul>
<h3>Sightings</h3><table><thead><tr>${le ? html`<th>agency</th>` : ""}<th>op</th><th>UK</th><th>ICS</th><th>submitter's status</th><th>submitted</th>${le ? html`<th>law-enforcement only</th>` : ""}</tr></thead>
<tbody>${rec.sightings.map((s) => html`<tr>${le ? html`<td class="le">${s.agencyId ?? ""}</td>` : ""}<td>${s.op}</td><td>${s.uk}</td><td>${s.ics ?? "-"}</td><td>${s.status}</td><td>${iso(s.submittedAt)}</td>${le ? html`<td class="le">${restrictedText(s.restricted)}</td>` : ""}</tr>`)}</tbody></table>
${le ? "" : html`<p class="note">Contributing agencies and law-enforcement-only fields are not shown to the ${ctx.user.role} role.</p>`}
<h3>Held by partners now</h3><table><thead><tr><th>partner</th><th>algorithm</th><th>revision</th><th>category sent</th></tr></thead>
<tbody data-holders="${rec.holders.length}">${rec.holders.length ? rec.holders.map((h) => html`<tr data-holder="${h.partnerId}"><td>${h.partnerId}</td><td>${h.alg}</td><td>${h.revision}</td><td>${h.category}</td></tr>`) : html`<tr><td colspan="4">no partner holds it</td></tr>`}</tbody></table></section>`;
}

function restrictedText(r: Record<string, unknown> | undefined): string {
  if (!r) return "";
  return Object.entries(r)
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("|") : String(v)}`)
    .join("; ");
}

function disclosuresSection(d: Part<readonly Disclosure[]> | null): Html {
  if (d === null) return html``;
  if (!d.ok)
    return html`<section id="disclosures"><h2>Disclosures</h2><p>${unavailable(d.error)}: the audit topic could not be read.</p></section>`;
  return html`<section id="disclosures"><h2>Disclosures (audit.v1)</h2><table><thead><tr><th>when</th><th>partner</th><th>what</th><th>partition/seq</th><th>algorithm</th><th>revision</th><th>cause</th></tr></thead>
<tbody data-disclosures="${d.value.length}">${d.value.map((e) => html`<tr data-disclosed-to="${e.partnerId}"><td>${iso(e.at)}</td><td>${e.partnerId}</td><td>${e.action}</td><td>${e.partition}/${e.seq}</td><td>${e.alg}</td><td>${e.revision ?? "-"}</td><td>${e.cause}</td></tr>`)}</tbody></table></section>`;
}

export function errorPage(ctx: PageContext | null, status: number, message: string): Html {
  const body = html`<p class="warn" data-error="${status}">${message}</p>`;
  if (ctx) return layout(ctx, `Error ${status}`, body);
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hashrelay console</title><link rel="stylesheet" href="/static/console.css"></head><body><main><h1>Error ${status}</h1>${body}</main></body></html>`;
}

export const CONSOLE_CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{display:flex;flex-wrap:wrap;gap:1em;align-items:center;padding:.6em 1em;background:#22313f;color:#fff}
header a{color:#cfe3ff;margin-right:.8em}header .user{margin-left:auto}header .ns{opacity:.7}
form.lookup input{font-family:monospace}main{padding:0 1em 1em}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse;background:#fff;width:100%}th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
thead th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}.sub{font-size:.85em;color:#57606a}
.part{font-family:monospace;font-size:.9em}.ok{color:#1a7f37}.warn{color:#b35900;font-weight:600}.na{color:#8c959f}.unavailable{color:#cf222e}
ul.alerts{margin:0;padding-left:1.1em;color:#b35900}.note{color:#57606a;font-size:.9em}code.hash{word-break:break-all}td.le{background:#fff8e6}
td.detail{font-family:monospace;font-size:.85em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dd{margin:0}
footer{padding:1em;color:#57606a;font-size:.85em}
`;
