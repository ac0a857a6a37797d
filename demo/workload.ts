/**
 * The demo's synthetic workload: random digests standing for benign generated pictures, seen by
 * several forces with realistic overlap, conflicting grades, NCA grading, a retraction, and some
 * bad records. Nothing here is, or resembles, a real hash list.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { AgencySigner } from "../services/force-cli/client.ts";
import { DEFAULT_DEGENERATE_PERCEPTUAL_RECORDS } from "../services/dedup/degenerate.ts";
import { AvroCodec } from "../services/shared/wire/codec.ts";
import type { Grade, Hash, Submission } from "../services/shared/wire/records.ts";
import { signRecord } from "../services/shared/wire/signing.ts";
import type { Unsigned } from "../services/shared/wire/signing.ts";

const codec = new AvroCodec();
const hex = (n: number) => randomBytes(n).toString("hex");

export interface SyntheticImage {
  readonly hashes: Hash[];
  readonly grade: Grade;
}

const GRADES: Grade[] = [
  { uk: "A", ics: "A1", vics: null },
  { uk: "A", ics: "A2", vics: null },
  { uk: "B", ics: "B1", vics: null },
  { uk: "B", ics: "B2", vics: null },
  { uk: "C", ics: null, vics: null },
];

export function syntheticImages(count: number): SyntheticImage[] {
  return Array.from({ length: count }, (_, i) => ({
    hashes: [
      { alg: "md5", value: hex(16), quality: null },
      { alg: "sha1", value: hex(20), quality: null },
      { alg: "pdq", value: hex(32), quality: 60 + (i % 40) },
    ],
    grade: GRADES[i % GRADES.length] as Grade,
  }));
}

export function sign(
  signer: AgencySigner,
  fields: Partial<Unsigned<Submission>> & Pick<Unsigned<Submission>, "hashes" | "grade">,
): Submission {
  return signRecord(
    "Submission",
    codec.schema("Submission").type,
    {
      submissionId: randomUUID(),
      agencyId: signer.agencyId,
      keyId: signer.keyId,
      op: "ASSERT",
      contentType: "image",
      gradingStatus: "indicative",
      lawEnforcement: {
        caseRef: `SYN-${hex(3)}`,
        series: null,
        victimIdentified: null,
        offenderIdentified: null,
        isDistributed: true,
        graderRef: null,
      },
      submittedAt: Date.now(),
      ...fields,
    },
    signer.privateKey,
  );
}

/** Each image is seen by one to three forces; every seventh gets a conflicting grade; the NCA grades every fifth. */
export function overlappingSubmissions(images: SyntheticImage[], forces: AgencySigner[], nca: AgencySigner): Submission[] {
  const out: Submission[] = [];
  images.forEach((img, i) => {
    const seenBy = 1 + (i % 3);
    for (let k = 0; k < seenBy; k++) {
      const force = forces[(i + k) % forces.length] as AgencySigner;
      const conflicting = k === 1 && i % 7 === 0;
      const grade: Grade = conflicting ? { uk: img.grade.uk === "C" ? "B" : "C", ics: null, vics: null } : img.grade;
      // Forces often hold only some of the hashes: the first sighting carries all of them.
      out.push(sign(force, { hashes: k === 0 ? img.hashes : [img.hashes[k % 2] as Hash], grade }));
    }
    if (i % 5 === 0) out.push(sign(nca, { hashes: [img.hashes[0] as Hash], grade: img.grade, gradingStatus: "confirmed" }));
  });
  return out;
}

/** A VICS 2.0 Media export as a force's forensic tool would write it (upper-case MD5, string booleans). */
/**
 * The placeholder PhotoDNA a forensic tool writes for items it could not hash: the same value on
 * several items of one export, each a different file (different MD5s). Synthetic bytes.
 */
export const PLACEHOLDER_PHOTODNA = Buffer.from(Array.from({ length: 144 }, (_, i) => (i * 37 + 11) & 0xff)).toString("base64");
/** Items of the export carrying the placeholder: past dedup's default threshold, so it turns degenerate (SHARED). */
export const PLACEHOLDER_ITEMS = DEFAULT_DEGENERATE_PERCEPTUAL_RECORDS + 1;
/** An all-zero PhotoDNA on one item: constant, degenerate from the start. */
const ZERO_PHOTODNA = Buffer.alloc(144).toString("base64");

/** Perceptual values of item i: the placeholder on items 1..PLACEHOLDER_ITEMS, all-zero on the next one. */
function perceptualOf(i: number): Record<string, string> {
  if (i >= 1 && i <= PLACEHOLDER_ITEMS) return { PhotoDNA: PLACEHOLDER_PHOTODNA };
  if (i === PLACEHOLDER_ITEMS + 1) return { PhotoDNA: ZERO_PHOTODNA };
  return {};
}

export function syntheticVicsFile(count: number): string {
  return JSON.stringify({
    "@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
    value: Array.from({ length: count }, (_, i) => ({
      MediaID: i + 1,
      MD5: hex(16).toUpperCase(),
      SHA1: hex(20),
      ...perceptualOf(i),
      Category: i % 10 === 0 ? null : 1,
      UKCategory: ["A", "B", "C"][i % 3],
      IsDistributed: i % 2 ? "true" : "false",
      ...(i === count - 1 ? { MD5: "NOT-A-HASH" } : {}),
    })),
  });
}
