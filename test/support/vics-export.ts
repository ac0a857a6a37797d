/**
 * A synthetic VICS 2.0 export of any size, produced chunk by chunk (never held whole), for the
 * reader's memory test and the force CLI benchmark. Random digests only. Each media item looks
 * like a forensic tool's: hashes, category, flags, and the file names, paths and times the hub
 * ignores, about 940 bytes of JSON, so 1,140,263 items make a file of about 1 GiB.
 */
import { randomBytes } from "node:crypto";

export interface SyntheticVicsOptions {
  /** Media items in the file (in its one case, in the Cases form). */
  readonly items: number;
  /** "cases" (default): one case holding every item; "media": the items directly in "value", no case. */
  readonly form?: "cases" | "media";
  /** Cases form: put the case fields (CaseID, CaseNumber) after the Media array, as some tools write them. */
  readonly late?: boolean;
  /** The case's CaseNumber, which every item's caseRef becomes. */
  readonly caseNumber?: string;
  /** Bytes per yielded chunk (at least; an item is never split). */
  readonly chunkBytes?: number;
}

export const SYNTHETIC_CASE_NUMBER = "SYN-BIG-1";

const CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#";

/** Random hex from a pool refilled by crypto.randomBytes: synthetic digests, cheaply. */
function hexSource(): (bytes: number) => string {
  let pool = Buffer.alloc(0);
  let offset = 0;
  return (bytes) => {
    if (offset + bytes > pool.length) {
      pool = randomBytes(64 * 1024);
      offset = 0;
    }
    const s = pool.toString("hex", offset, offset + bytes);
    offset += bytes;
    return s;
  };
}

function mediaItem(i: number, hex: (bytes: number) => string): Record<string, unknown> {
  const day = String(1 + (i % 28)).padStart(2, "0");
  const time = `2024-03-${day}T${String(i % 24).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}:07Z`;
  const folder = `C:\\Users\\synthetic\\AppData\\Local\\Temp\\export-${String(i % 997).padStart(4, "0")}\\`;
  return {
    MediaID: i + 1,
    Category: i % 5,
    MD5: hex(16).toUpperCase(),
    SHA1: hex(20).toUpperCase(),
    SHA256: hex(32).toUpperCase(),
    PhotoDNA: i % 10 === 0 ? hex(144) : null,
    MimeType: i % 20 === 0 ? "video/mp4" : "image/jpeg",
    MediaSize: 1000 + i,
    IsDistributed: i % 2 === 0 ? "true" : false,
    VictimIdentified: false,
    OffenderIdentified: null,
    Series: null,
    Grader: `grader-${i % 7}`,
    MediaFiles: [
      {
        FileName: `synthetic-${i}.jpg`,
        FilePath: folder,
        Created: time,
        Written: time,
        Accessed: time,
        Unallocated: false,
      },
      {
        FileName: `synthetic-${i}-thumb.jpg`,
        FilePath: `${folder}thumbnails\\`,
        Created: time,
        Written: time,
        Accessed: time,
        Unallocated: i % 3 === 0,
      },
    ],
    Exifs: [{ PropertyName: "Make", PropertyValue: "synthetic camera" }],
  };
}

/** The export as UTF-8 chunks (see SyntheticVicsOptions). */
export function* syntheticVicsExport(o: SyntheticVicsOptions): Generator<Buffer> {
  const chunkBytes = o.chunkBytes ?? 64 * 1024;
  const cases = (o.form ?? "cases") === "cases";
  const caseFields = `"CaseID":"synthetic-case","CaseNumber":${JSON.stringify(o.caseNumber ?? SYNTHETIC_CASE_NUMBER)}`;
  const hex = hexSource();
  const open = cases ? `{${o.late ? "" : `${caseFields},`}"Media":[` : "";
  const close = cases ? `]${o.late ? `,${caseFields}` : ""}}` : "";
  let text = `{"@odata.context":${JSON.stringify(CONTEXT + (cases ? "Cases" : "Media"))},"value":[${open}`;
  for (let i = 0; i < o.items; i++) {
    text += (i === 0 ? "" : ",") + JSON.stringify(mediaItem(i, hex));
    if (text.length >= chunkBytes) {
      yield Buffer.from(text, "utf8");
      text = "";
    }
  }
  yield Buffer.from(`${text}${close}]}`, "utf8");
}
