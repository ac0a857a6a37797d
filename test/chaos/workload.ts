/**
 * What the chaos run submits, as forces and the NCA would: new images (random digests standing for
 * benign generated pictures), confirmations by other forces, conflicting grades, regrades by the
 * grading authority, merges (one submission naming hashes of two records), retractions of an
 * agency's own sightings, and bad records of several kinds, each carrying a unique token so that
 * its rejection can be found on the DLQ. Choices come from the run's seeded generator; digests are
 * random. Only accepted assertions become material for later confirmations, merges and retractions.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { AgencySigner } from "../../services/force-cli/client.ts";
import type { Grade, Hash, Submission } from "../../services/shared/wire/records.ts";
import { submissionToJson } from "../../services/shared/wire/submission-json.ts";
import { signedSubmission } from "../support/agencies.ts";

const hex = (n: number) => randomBytes(n).toString("hex");

export const GRADES: readonly Grade[] = [
  { uk: "A", ics: "A1", vics: null },
  { uk: "A", ics: "A2", vics: null },
  { uk: "B", ics: "B1", vics: null },
  { uk: "B", ics: "B2", vics: null },
  { uk: "C", ics: null, vics: null },
];

/** An image the hub has accepted an assertion of: its hashes and who asserts it. */
interface Image {
  readonly md5: Hash;
  readonly sha1: Hash;
  readonly grade: Grade;
  readonly asserters: Set<string>;
}

/** Which kind of submission it is, for the report's counts. */
export type SubmissionKind = "new" | "confirm" | "conflict" | "regrade" | "merge" | "retract";

export interface Planned {
  readonly sub: Submission;
  readonly kind: SubmissionKind;
  /** Applied to the pool once the hub accepts it. */
  readonly onAccepted: () => void;
}

/** A bad record: the bytes to send and the token its rejection carries in its original bytes. */
export interface BadRecord {
  readonly kind: "malformed-json" | "invalid-hash" | "bad-signature";
  readonly body: Buffer;
  readonly token: string;
}

export class Workload {
  private readonly images: Image[] = [];
  private readonly signers: Record<string, AgencySigner>;
  private readonly forces: readonly string[];
  private readonly authority: string;
  private readonly rnd: () => number;
  private badTurn = 0;

  constructor(o: { signers: Record<string, AgencySigner>; forces: readonly string[]; authority: string; rnd: () => number }) {
    this.signers = o.signers;
    this.forces = o.forces;
    this.authority = o.authority;
    this.rnd = o.rnd;
  }

  get poolSize(): number {
    return this.images.length;
  }

  /** n submissions of mixed kinds; without enough accepted images yet, new ones only. */
  next(n: number): Planned[] {
    const out: Planned[] = [];
    for (let i = 0; i < n; i++) {
      const r = this.rnd();
      const live = this.images.filter((img) => img.asserters.size > 0);
      if (live.length < 20 || r < 0.55) out.push(this.newImage());
      else if (r < 0.7) out.push(this.confirm(this.pick(live), false));
      else if (r < 0.76) out.push(this.confirm(this.pick(live), true));
      else if (r < 0.84) out.push(this.regrade(this.pick(live)));
      else if (r < 0.92) out.push(this.merge(this.pick(live), this.pick(live)));
      else out.push(this.retract(this.pick(live)));
    }
    return out;
  }

  /** New images only (the S3 imports: a force's export of what it has seized). */
  fresh(n: number, agencyId: string): Planned[] {
    return Array.from({ length: n }, () => this.newImage(agencyId));
  }

  /** The next bad record, its kind in turn. */
  bad(): BadRecord {
    const token = randomUUID();
    const signer = this.signers[this.forces[0] as string] as AgencySigner;
    const kinds: BadRecord["kind"][] = ["malformed-json", "invalid-hash", "bad-signature"];
    const kind = kinds[this.badTurn++ % kinds.length] as BadRecord["kind"];
    if (kind === "malformed-json") return { kind, token, body: Buffer.from(`{ "chaos": "${token}", this is not json`) };
    const sub = signedSubmission(signer, { submissionId: token, hashes: [this.hash("md5")], grade: GRADES[0] as Grade });
    const json = submissionToJson(sub) as unknown as Record<string, unknown>;
    if (kind === "invalid-hash") json["hashes"] = [{ alg: "md5", value: "not-a-hex-digest" }];
    else json["gradingStatus"] = "confirmed"; // changed after signing: the signature no longer covers it
    return { kind, token, body: Buffer.from(JSON.stringify([json])) };
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)] as T;
  }

  private hash(alg: "md5" | "sha1" | "sha256"): Hash {
    return { alg, value: hex(alg === "md5" ? 16 : alg === "sha1" ? 20 : 32), quality: null };
  }

  private sign(agencyId: string, fields: Parameters<typeof signedSubmission>[1]): Submission {
    return signedSubmission(this.signers[agencyId] as AgencySigner, fields);
  }

  private newImage(agencyId = this.pick(this.forces)): Planned {
    const grade = this.pick(GRADES);
    const md5 = this.hash("md5");
    const sha1 = this.hash("sha1");
    const hashes: Hash[] = [md5, sha1, { alg: "pdq", value: hex(32), quality: 60 + Math.floor(this.rnd() * 40) }];
    if (this.rnd() < 0.2) hashes.push(this.hash("sha256"));
    const sub = this.sign(agencyId, { hashes, grade });
    return { sub, kind: "new", onAccepted: () => this.images.push({ md5, sha1, grade, asserters: new Set([agencyId]) }) };
  }

  /** Another force sees the image: the same grade confirms it, another one disputes it. */
  private confirm(img: Image, conflicting: boolean): Planned {
    const others = this.forces.filter((f) => !img.asserters.has(f));
    const agencyId = others.length ? this.pick(others) : this.pick(this.forces);
    const grade = conflicting ? this.pick(GRADES.filter((g) => g.uk !== img.grade.uk)) : img.grade;
    return {
      sub: this.sign(agencyId, { hashes: [img.md5], grade }),
      kind: conflicting ? "conflict" : "confirm",
      onAccepted: () => img.asserters.add(agencyId),
    };
  }

  /** The grading authority grades it (often differently): its grade wins. */
  private regrade(img: Image): Planned {
    return {
      sub: this.sign(this.authority, { hashes: [img.sha1], grade: this.pick(GRADES), gradingStatus: "confirmed" }),
      kind: "regrade",
      onAccepted: () => img.asserters.add(this.authority),
    };
  }

  /** A force holds one file whose md5 is one record's and sha1 another's: the two records merge. */
  private merge(a: Image, b: Image): Planned {
    const agencyId = this.pick(this.forces);
    return {
      sub: this.sign(agencyId, { hashes: [a.md5, b.sha1], grade: a.grade }),
      kind: "merge",
      onAccepted: () => {
        a.asserters.add(agencyId);
        b.asserters.add(agencyId);
      },
    };
  }

  /** One agency that asserted the image takes its sighting back. */
  private retract(img: Image): Planned {
    const agencyId = this.pick([...img.asserters]);
    return {
      sub: this.sign(agencyId, { op: "RETRACT", hashes: [img.md5], grade: img.grade, submittedAt: Date.now() + 1 }),
      kind: "retract",
      onAccepted: () => img.asserters.delete(agencyId),
    };
  }
}
