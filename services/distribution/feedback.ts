/**
 * What the hub accepts as partner feedback, before it looks at any record: a PartnerFeedback that
 * decodes, names the partner whose topic it came on, is signed, with a key registered to that
 * partner and usable when it was signed, and keeps the content rules (shared/wire/feedback.ts).
 * Each refusal carries its reason code; the processor puts the original bytes on the dead-letter
 * topic. Whether the recordRef was disclosed to this partner, and replays, are store questions
 * (feedback-store.ts). No database here, so each refusal is unit-tested.
 */
import type avro from "avsc";
import { SignatureError, ValidationError } from "../shared/errors.ts";
import { assertKeyUsable } from "../shared/key-registry.ts";
import type { KeyLookup } from "../shared/key-registry.ts";
import type { AvroCodec } from "../shared/wire/codec.ts";
import { feedbackSignatureMatches, isSigned, validateFeedback } from "../shared/wire/feedback.ts";
import type { PartnerFeedback } from "../shared/wire/records.ts";
import { publicKeyFromRaw } from "../shared/wire/signing.ts";

/** Decodes and verifies one message of feedback.<partnerId>.v1; throws a HashrelayError with the reason. */
export async function verifyFeedback(
  codec: AvroCodec,
  bytes: Buffer,
  topicPartnerId: string,
  keys: KeyLookup,
  now: Date,
): Promise<PartnerFeedback> {
  const { value: feedback, writer } = codec.decode("PartnerFeedback", bytes);
  if (feedback.partnerId !== topicPartnerId) {
    throw new ValidationError(
      "PARTNER_MISMATCH",
      `feedback says partner ${feedback.partnerId} but came on ${topicPartnerId}'s topic; each partner writes only its own`,
    );
  }
  if (!isSigned(feedback)) throw new SignatureError("MISSING_SIGNATURE", `feedback ${feedback.feedbackId} is not signed`);
  await verifyFeedbackSignature(writer.type, feedback, keys, now);
  const { signature: _signature, ...unsigned } = feedback;
  validateFeedback(unsigned);
  return feedback;
}

/** The partner's key, usable when the partner says it signed (not after now, not revoked by now), and a matching signature. */
async function verifyFeedbackSignature(writerType: avro.Type, f: PartnerFeedback, keys: KeyLookup, now: Date): Promise<void> {
  const key = assertKeyUsable(f.keyId, await keys.findKey(f.keyId), {
    ownerKind: "partner",
    ownerId: f.partnerId,
    at: now,
    signedAt: new Date(f.sentAt),
  });
  if (!feedbackSignatureMatches(writerType, f, publicKeyFromRaw(key.publicKey))) {
    throw new SignatureError("BAD_SIGNATURE", `feedback ${f.feedbackId} signature does not verify with key ${f.keyId}`);
  }
}

/** Which partner a feedback topic belongs to ("[<ns>.]feedback.<partner>.v1"), or null for any other name. */
export function partnerOfFeedbackTopic(topic: string, feedbackPrefix: string): string | null {
  if (!topic.startsWith(feedbackPrefix) || !topic.endsWith(".v1")) return null;
  const id = topic.slice(feedbackPrefix.length, -".v1".length);
  return /^[a-z0-9][a-z0-9-]{1,62}$/.test(id) ? id : null;
}
