/**
 * One VICS media object to one SubmissionDraft: the field mapping of the VICS reader (vics.ts
 * streams the file and hands each media object here). Property names are matched through `norm`
 * (case-insensitively, ignoring "_", "-" and spaces); a property given twice in two spellings is
 * refused, never guessed between.
 *
 * Invariants: the hashes come from the algorithm table only (hash-algorithms.ts), from the
 * top-level properties and from `AlternativeHashes` alike, and one media item carries at most one
 * value per algorithm: a second, different value (a conflicting duplicate) refuses the item; an
 * equal one is dropped. An `AlternativeHashes` entry whose HashName is not in the table (SSDEEP,
 * SHA512...) is ignored and reported back by name, never sent and never silently lost.
 */
import { ValidationError } from "../../shared/errors.ts";
import type { ContentType, Hash, UkCategory } from "../../shared/wire/records.ts";
import { HASH_ALGORITHMS } from "../../shared/wire/hash-algorithms.ts";
import type { HashAlgorithm, QualityRule } from "../../shared/wire/hash-algorithms.ts";
import { normaliseHash, SUBMISSION_ID_PATTERN, validateDraft } from "../../shared/wire/submission-validation.ts";
import type { SubmissionDraft } from "../../shared/wire/submission-validation.ts";
import type { JsonObject } from "./streaming-json-assembler.ts";
import { derivedSubmissionId, hashesMaterial, looseBoolean, looseUkCategory } from "./common.ts";

export type VicsProfile = "vics-1.x" | "vics-2.0";

/** VICS category code → UK category, when the media gives no UK category itself. */
export const VICS_TO_UK: Readonly<Record<number, UkCategory>> = {
  0: "NON_INDECENT",
  1: "UNGRADED",
  2: "UNGRADED",
  3: "PROHIBITED_NONPHOTO",
  4: "NON_INDECENT",
};

/** Unknown HashNames kept per item for the report; longer names are cut to this many characters. */
const MAX_IGNORED_NAMES = 16;
const MAX_IGNORED_NAME_CHARS = 64;

const normCache = new Map<string, string>();

/** Property names as compared: lower case, without "_", "-" or spaces. */
export function norm(key: string): string {
  let n = normCache.get(key);
  if (n === undefined) {
    n = key.toLowerCase().replace(/[\s_-]/g, "");
    // Short keys only: caching long distinct keys would pin memory a hostile file chooses.
    if (normCache.size < 4096 && key.length <= 64) normCache.set(key, n);
  }
  return n;
}

export interface CaseContext {
  readonly caseRef: string | null;
  /** Why the case's fields give its media no caseRef (INVALID_FIELD): each of its media items is refused with it. */
  readonly refused: ValidationError | null;
  /** 0 for the file's first case. */
  readonly ordinal: number;
}

/** The case-level fields caseRefOf reads, through `norm`; the scan pass keeps only these of an element. */
export const CASE_REF_KEYS: ReadonlySet<string> = new Set(["casenumber", "caseid"]);

/** Case-insensitive view of an object's properties; a property given twice (in two spellings) is refused when read. */
class Props {
  private readonly map = new Map<string, { key: string; value: unknown }>();
  private readonly twice = new Set<string>();

  constructor(obj: JsonObject) {
    for (const key of Object.keys(obj)) {
      const k = norm(key);
      if (this.map.has(k)) this.twice.add(k);
      else this.map.set(k, { key, value: obj[key] });
    }
  }

  /** The first of `names` present, with the key as spelt in the file. */
  get(...names: string[]): { key: string; value: unknown } | undefined {
    for (const n of names) {
      if (this.twice.has(n)) throw new ValidationError("INVALID_FIELD", `${n}: property given more than once (in different spellings)`);
      const hit = this.map.get(n);
      if (hit !== undefined && hit.value !== null && hit.value !== "") return hit;
    }
    return undefined;
  }
}

type Prop = { key: string; value: unknown } | undefined;

function textOrNumber(p: Prop): string | null {
  if (!p) return null;
  if (typeof p.value === "string") return p.value.trim() || null;
  if (typeof p.value === "number") return String(p.value);
  throw new ValidationError("INVALID_FIELD", `${p.key}: must be text or a number, got ${JSON.stringify(p.value)}`);
}

/**
 * The caseRef a case's own fields give (CaseNumber, else CaseID), or null. Throws INVALID_FIELD for
 * one that is neither text nor a number, and for a CaseNumber or CaseID given twice (`repeatedKey`,
 * the same key twice; or in two spellings): which case the media belong to would be a guess.
 */
export function caseRefOf(fields: JsonObject, repeatedKey: string | null = null): string | null {
  if (repeatedKey !== null) throw new ValidationError("INVALID_FIELD", `${repeatedKey} given twice`);
  for (const name of CASE_REF_KEYS) {
    const spellings = Object.keys(fields).filter((k) => norm(k) === name);
    if (spellings.length > 1) {
      throw new ValidationError(
        "INVALID_FIELD",
        `${spellings[0]} given twice, as ${spellings.map((k) => JSON.stringify(k)).join(" and ")}`,
      );
    }
  }
  const props = new Props(fields);
  return textOrNumber(props.get("casenumber")) ?? textOrNumber(props.get("caseid"));
}

/** Each algorithm's VICS media property (and quality property), in the order drafts list their hashes (the table's vics.position). */
const HASH_PROPS = [...HASH_ALGORITHMS]
  .sort((x, y) => x.vics.position - y.vics.position)
  .map((alg) => ({ alg, key: norm(alg.vics.property), qualityKey: alg.quality ? norm(alg.quality.vicsProperty) : null }));
const HASH_PROP_NAMES = HASH_PROPS.map((h) => h.alg.vics.property).join(", ");

/** An AlternativeHashes HashName, through norm, to its algorithm: the table's name or VICS property ("SHA-1", "sha1", "PhotoDNA"). */
const BY_HASH_NAME: ReadonlyMap<string, HashAlgorithm> = new Map(
  HASH_ALGORITHMS.flatMap((a) => [
    [norm(a.name), a],
    [norm(a.vics.property), a],
  ]),
);

function vicsCategory(p: Prop): number | null {
  if (!p) return null;
  let code: number | null = null;
  if (typeof p.value === "number") code = p.value;
  else if (typeof p.value === "string" && /^\s*\d+\s*$/.test(p.value)) code = Number(p.value);
  if (code === null || !Number.isInteger(code) || VICS_TO_UK[code] === undefined) {
    throw new ValidationError("INVALID_CATEGORY", `${p.key}: ${JSON.stringify(p.value)} is not a VICS category (0-4 or null)`);
  }
  return code;
}

function qualityOf(p: Prop, alg: HashAlgorithm, rule: QualityRule): number | null {
  if (!p) return null;
  if (typeof p.value === "number") return p.value;
  if (typeof p.value === "string" && /^\s*-?\d+\s*$/.test(p.value)) return Number(p.value);
  throw new ValidationError(
    "INVALID_HASH",
    `${p.key}: ${alg.name} quality must be an integer from ${rule.min} to ${rule.max}, got ${JSON.stringify(p.value)}`,
  );
}

/** A media item's hashes, one per algorithm, with where each came from (for conflict messages). */
class HashSet {
  private readonly byAlg = new Map<string, { hash: Hash; where: string }>();

  add(alg: HashAlgorithm, where: string, value: unknown, quality: number | null): void {
    if (typeof value !== "string") throw new ValidationError("INVALID_HASH", `${where}: must be a string, got ${JSON.stringify(value)}`);
    let hash: Hash;
    try {
      hash = normaliseHash(alg.name, value, quality);
    } catch (err) {
      if (err instanceof ValidationError) throw new ValidationError(err.reason, `${where}: ${err.detail}`);
      throw err;
    }
    const had = this.byAlg.get(alg.name);
    if (!had) {
      this.byAlg.set(alg.name, { hash, where });
      return;
    }
    const sameQuality = had.hash.quality === null || hash.quality === null || had.hash.quality === hash.quality;
    if (had.hash.value !== hash.value || !sameQuality) {
      throw new ValidationError(
        "INVALID_HASH",
        `${where}: ${alg.name} ${hash.value}${hash.quality === null ? "" : ` (quality ${hash.quality})`} conflicts with ` +
          `${had.where} ${had.hash.value}${had.hash.quality === null ? "" : ` (quality ${had.hash.quality})`}: ` +
          "one media item has one value per algorithm",
      );
    }
    if (had.hash.quality === null && hash.quality !== null) this.byAlg.set(alg.name, { hash, where: had.where });
  }

  /** In the table's VICS order. */
  list(): Hash[] {
    return HASH_PROPS.flatMap(({ alg }) => {
      const h = this.byAlg.get(alg.name);
      return h ? [h.hash] : [];
    });
  }
}

/**
 * `AlternativeHashes` (VICS 1.3): an array of {HashName, HashValue} (an optional Quality, else the
 * media's own quality property, for an algorithm that has one). Returns the HashNames not in the table.
 */
function alternativeHashes(p: Prop, media: Props, into: HashSet): string[] {
  if (!p) return [];
  if (!Array.isArray(p.value)) throw new ValidationError("INVALID_FIELD", `${p.key}: must be an array of {HashName, HashValue}`);
  const ignored: string[] = [];
  p.value.forEach((entry: unknown, i) => {
    const where = `${p.key}[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new ValidationError("INVALID_FIELD", `${where}: must be an object {HashName, HashValue}, got ${JSON.stringify(entry)}`);
    }
    const props = new Props(entry as JsonObject);
    const name = props.get("hashname");
    const value = props.get("hashvalue");
    if (!name || typeof name.value !== "string") {
      throw new ValidationError(
        "INVALID_FIELD",
        `${where}.HashName: must be the algorithm's name as text, got ${JSON.stringify(name?.value)}`,
      );
    }
    if (!value) return; // a named hash the tool did not compute for this item: nothing to take
    const alg = BY_HASH_NAME.get(norm(name.value));
    if (!alg) {
      const shown = name.value.trim().slice(0, MAX_IGNORED_NAME_CHARS);
      if (!ignored.includes(shown) && ignored.length < MAX_IGNORED_NAMES) ignored.push(shown);
      return;
    }
    const quality = alg.quality
      ? qualityOf(props.get("quality", norm(alg.quality.vicsProperty)) ?? media.get(norm(alg.quality.vicsProperty)), alg, alg.quality)
      : null;
    into.add(alg, `${where} (${name.value})`, value.value, quality);
  });
  return ignored;
}

/**
 * The content type MimeType and MediaType give: video/* or "Video" is video; image/* or "Image"
 * is image; anything else (absent, application/octet-stream...) says nothing, and the item is an
 * image as before. The two saying video and image at once refuse the item.
 */
function contentTypeOf(props: Props): ContentType {
  let said: { type: ContentType; key: string } | null = null;
  for (const name of ["mimetype", "mediatype"]) {
    const p = props.get(name);
    if (!p) continue;
    if (typeof p.value !== "string") throw new ValidationError("INVALID_FIELD", `${p.key}: must be text, got ${JSON.stringify(p.value)}`);
    const v = p.value.trim().toLowerCase();
    const type: ContentType | null =
      v === "video" || v.startsWith("video/") ? "video" : v === "image" || v.startsWith("image/") ? "image" : null;
    if (type === null) continue;
    if (said && said.type !== type) {
      throw new ValidationError("INVALID_FIELD", `${p.key}: ${JSON.stringify(p.value)} says ${type} but ${said.key} says ${said.type}`);
    }
    said = { type, key: p.key };
  }
  return said?.type ?? "image";
}

export interface MediaDraft {
  readonly draft: SubmissionDraft;
  /** AlternativeHashes names not in the algorithm table, as written (deduplicated). */
  readonly ignoredHashNames: readonly string[];
}

/** The validated draft for one VICS media object; throws ValidationError. */
export function mediaToDraft(media: JsonObject, ctx: CaseContext | null, profile: VicsProfile, prefix: string): MediaDraft {
  const props = new Props(media);

  const set = new HashSet();
  for (const { alg, key, qualityKey } of HASH_PROPS) {
    const p = props.get(key);
    if (!p) continue;
    const quality = alg.quality && qualityKey ? qualityOf(props.get(qualityKey), alg, alg.quality) : null;
    set.add(alg, p.key, p.value, quality);
  }
  const ignoredHashNames = alternativeHashes(props.get("alternativehashes"), props, set);
  const hashes = set.list();
  if (hashes.length === 0) {
    const also = ignoredHashNames.length > 0 ? ` (AlternativeHashes holds only ${ignoredHashNames.join(", ")}, not read)` : "";
    throw new ValidationError("NO_HASHES", `media item has none of ${HASH_PROP_NAMES}${also}`);
  }

  const code = vicsCategory(props.get("category"));
  const ukProp = props.get("ukcategory", "categoryuk");
  const ukOwn = ukProp ? looseUkCategory(ukProp.value, ukProp.key) : null;
  const uk: UkCategory = ukOwn ?? (code === null ? "UNGRADED" : (VICS_TO_UK[code] as UkCategory));

  const flag = (name: string): boolean | null => {
    const p = props.get(name);
    return p ? looseBoolean(p.value, p.key) : null;
  };

  const mediaId = textOrNumber(props.get("mediaid"));
  const scope = ctx && ctx.ordinal > 0 ? `c${ctx.ordinal}.` : "";
  let submissionId: string;
  if (mediaId === null) submissionId = derivedSubmissionId(prefix + scope, "h", hashesMaterial(hashes));
  else if (SUBMISSION_ID_PATTERN.test(prefix + scope + mediaId)) submissionId = prefix + scope + mediaId;
  else submissionId = derivedSubmissionId(prefix + scope, "m", mediaId);

  const draft = validateDraft({
    submissionId,
    op: "ASSERT",
    contentType: contentTypeOf(props),
    hashes,
    grade: { uk, ics: null, vics: code === null ? null : { profile, code } },
    gradingStatus: "indicative",
    lawEnforcement: {
      caseRef: ctx?.caseRef ?? null,
      series: textOrNumber(props.get("series")),
      victimIdentified: flag("victimidentified"),
      offenderIdentified: flag("offenderidentified"),
      isDistributed: flag("isdistributed"),
      graderRef: textOrNumber(props.get("grader", "gradername")),
    },
  });
  return { draft, ignoredHashNames };
}
