/**
 * Writes the force-side input vectors, docs/vectors/vics-input.json and csv-input.json: a small
 * synthetic VICS export and a small CSV hash list, each with the submission drafts the force CLI's
 * readers (services/force-cli/formats/) make from it, and the items they refuse with their reason
 * and original bytes. A force that builds its own tooling can check that it reads a file the way
 * the hub's CLI does. Run it only when a reader's output is meant to change:
 * `node docs/vectors/generate-inputs.ts && npx biome check --write docs/vectors/`;
 * test/vectors.test.ts reads each file again and fails on any difference.
 *
 * Every digest is derived from a fixed string (synthetic, no real hash list); file names and paths
 * in the VICS export are there to show that the reader ignores them.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { readCsvDrafts } from "../../services/force-cli/formats/csv.ts";
import { readVicsDrafts } from "../../services/force-cli/formats/vics.ts";
import type { DraftItem } from "../../services/force-cli/formats/common.ts";

const OUT = fileURLToPath(new URL("./", import.meta.url));
const digestOf = (alg: string, label: string) => createHash(alg).update(`hashrelay synthetic input vector ${label}`).digest("hex");
/** `n` synthetic bytes (at most 160): SHA-256 digests of a label, end to end. */
function bytesOf(label: string, n: number): Buffer {
  const blocks = [0, 1, 2, 3, 4].map((i) => createHash("sha256").update(`hashrelay synthetic photodna ${label} ${i}`).digest());
  return Buffer.concat(blocks).subarray(0, n);
}

/** What a vector records of one item: the draft as JSON, or the refusal with its original bytes. */
function itemVector(item: DraftItem): Record<string, unknown> {
  if (item.ok) {
    return {
      index: item.index,
      ok: true,
      draft: item.draft,
      ...(item.ignoredHashNames?.length ? { ignoredHashNames: item.ignoredHashNames } : {}),
    };
  }
  return { index: item.index, ok: false, reason: item.reason, original: item.original.toString("utf8") };
}

async function collect(items: AsyncIterable<DraftItem>): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const item of items) out.push(itemVector(item));
  return out;
}

function write(name: string, value: unknown): void {
  writeFileSync(`${OUT}${name}`, `${JSON.stringify(value, null, 2)}\n`);
  console.log(`wrote docs/vectors/${name}`);
}

// ---- VICS 2.0 Media export -------------------------------------------------------------------
const vics = `${JSON.stringify(
  {
    "@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
    value: [
      {
        MediaID: 1,
        MD5: digestOf("md5", "vics 1").toUpperCase(),
        SHA1: digestOf("sha1", "vics 1"),
        PDQ: digestOf("sha256", "vics 1 pdq"),
        PDQQuality: 90,
        Category: 1,
        UKCategory: "B",
        IsDistributed: "true",
        VictimIdentified: false,
        Series: "SYNTH-SERIES",
        FileName: "IMG_0001.JPG",
        FilePath: "C:\\export\\IMG_0001.JPG",
      },
      {
        MediaID: 2,
        MD5: digestOf("md5", "vics 2"),
        PhotoDNA: bytesOf("vics 2", 144).toString("hex"),
        Category: 3,
        MimeType: "video/mp4",
      },
      {
        MediaID: "3",
        Category: 0,
        AlternativeHashes: [
          { HashName: "SHA-256", HashValue: digestOf("sha256", "vics 3") },
          { HashName: "TLSH", HashValue: "T1SYNTHETIC" },
        ],
      },
      { MediaID: 4, MD5: "NOT-A-HASH", Category: 1 },
      { MediaID: 5, MD5: digestOf("md5", "vics 5"), Category: 9 },
    ],
  },
  null,
  2,
)}\n`;
const vicsPrefix = "vector-force:vics-0001:";
write("vics-input.json", {
  description:
    "A VICS 2.0 Media export and what the force CLI's reader (readVicsDrafts) makes of it: one draft per media item, or the item refused with its reason and original (its JSON, re-serialised).",
  submissionIdPrefix: vicsPrefix,
  file: vics,
  items: await collect(readVicsDrafts(() => Readable.from([Buffer.from(vics)]), { submissionIdPrefix: vicsPrefix })),
});

// ---- CSV hash list ---------------------------------------------------------------------------
const csv = [
  "MD5,sha1,PDQ,pdq_quality,Category,content_type,submission_id,case_ref",
  `${digestOf("md5", "csv 1").toUpperCase()},${digestOf("sha1", "csv 1")},${digestOf("sha256", "csv 1 pdq")},85,Cat A,,,"SYNTH-CASE, 0002"`,
  `${digestOf("md5", "csv 2")},,,,C,video,vector-force:own-id-7,`,
  `${digestOf("md5", "csv 3")},,,,,,,`,
  `${digestOf("md5", "csv 4")},,,,D,,,`,
  `${digestOf("md5", "csv 5")},,${digestOf("sha256", "csv 5 pdq")},101,A,,,`,
  "",
].join("\r\n");
const csvPrefix = "vector-force:csv-0001:";
write("csv-input.json", {
  description:
    "A CSV hash list (CRLF line ends) and what the force CLI's reader (readCsvDrafts) makes of it: one draft per row, or the row refused with its reason and original (the row's bytes without its line end).",
  submissionIdPrefix: csvPrefix,
  file: csv,
  items: await collect(readCsvDrafts(Readable.from([Buffer.from(csv)]), { submissionIdPrefix: csvPrefix })),
});
