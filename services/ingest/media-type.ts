/**
 * Which request bodies the ingest API reads, by Content-Type: one entry per body-taking route,
 * the table the handlers check and the OpenAPI document lists, so the two cannot disagree.
 *
 * Invariant: a body reaches a parser only under a media type its route names. JSON is UTF-8
 * (RFC 8259) and the parsers read UTF-8 only, so a charset parameter other than utf-8 is refused
 * rather than read as mojibake; other parameters carry no meaning here and are ignored.
 */

/** Media types (lower case, no parameters) each body-taking route accepts; the first is what clients send. */
export const ACCEPTED_MEDIA_TYPES = {
  "/v1/submissions": ["application/json", "application/x-ndjson", "application/jsonl"],
  "/v1/imports": ["application/json"],
} as const satisfies Record<string, readonly string[]>;

export type BodyRoute = keyof typeof ACCEPTED_MEDIA_TYPES;

/** Charset names that mean UTF-8 (the IANA name and the common alias). */
const UTF8_CHARSETS: ReadonlySet<string> = new Set(["utf-8", "utf8"]);

/** How much of a sent header an error quotes back: enough to recognise it, never the whole of a hostile one. */
const QUOTE_LIMIT = 80;

export type MediaTypeCheck = { readonly ok: true } | { readonly ok: false; readonly detail: string };

function quote(text: string): string {
  return JSON.stringify(text.length > QUOTE_LIMIT ? `${text.slice(0, QUOTE_LIMIT)}…` : text);
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
}

/** Whether a request's Content-Type header names a body the route reads; otherwise what was sent and what to send instead. */
export function checkMediaType(header: string | undefined, route: BodyRoute): MediaTypeCheck {
  const accepted: readonly string[] = ACCEPTED_MEDIA_TYPES[route];
  const send = `send Content-Type ${accepted.join(", ")} (UTF-8; charset=utf-8 or no charset)`;
  if (header === undefined || header.trim() === "") {
    return { ok: false, detail: `POST ${route} needs a Content-Type header; ${send}` };
  }
  const [essence = "", ...parameters] = header.split(";");
  const type = essence.trim().toLowerCase();
  if (!accepted.includes(type)) {
    return { ok: false, detail: `Content-Type ${quote(type)} is not read by POST ${route}; ${send}` };
  }
  for (const parameter of parameters) {
    const eq = parameter.indexOf("=");
    if (eq < 0 || parameter.slice(0, eq).trim().toLowerCase() !== "charset") continue;
    const charset = unquote(parameter.slice(eq + 1).trim()).toLowerCase();
    if (!UTF8_CHARSETS.has(charset)) {
      return {
        ok: false,
        detail: `charset ${quote(charset)} is not read by POST ${route}: bodies are JSON in UTF-8; re-encode and ${send}`,
      };
    }
  }
  return { ok: true };
}
