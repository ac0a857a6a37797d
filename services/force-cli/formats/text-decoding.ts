/**
 * Text of an export file as forensic tools write it: UTF-8 (with or without a byte-order mark),
 * or UTF-16 LE or BE with a byte-order mark (Windows tools write that). Streaming: a character
 * split across chunks is kept whole, and nothing but the bytes of one unfinished character is
 * held between chunks.
 *
 * Invariant: decoding is strict. Bytes that are not valid in the file's encoding, UTF-32, UTF-16
 * without a byte-order mark, or a file that ends inside a character throw an EncodingError that
 * names the encoding, the problem and its byte offset in the file; nothing is replaced by U+FFFD.
 * String chunks (a source that already gives text) pass through, a leading BOM dropped.
 */
import { TextDecoder } from "node:util";
import { ValidationError } from "../../shared/errors.ts";
import type { ReasonCode } from "../../shared/errors.ts";
import { chunksOf } from "./common.ts";
import type { ByteSource } from "./common.ts";

export type TextEncoding = "UTF-8" | "UTF-16LE" | "UTF-16BE";

const SAVE_AS = "save the export as UTF-8, or as UTF-16 with a byte-order mark";

/** A file whose bytes are not text in an encoding the readers take. */
export class EncodingError extends ValidationError {
  /** Offset in the file of the first byte that cannot be decoded (the file's size when it ends inside a character). */
  readonly atByte: number;
  /** The file ends inside a character: cut off. */
  readonly truncated: boolean;

  constructor(reason: ReasonCode, detail: string, atByte: number, truncated: boolean) {
    super(reason, detail);
    this.atByte = atByte;
    this.truncated = truncated;
  }
}

interface Detected {
  readonly encoding: TextEncoding;
  /** Bytes of byte-order mark to skip. */
  readonly bom: number;
}

/** The encoding the first bytes announce, or an EncodingError; null while fewer than 4 bytes are known and more may come. */
function detect(head: Buffer, final: boolean, reason: ReasonCode): Detected | null {
  const b = (i: number) => (i < head.length ? head[i] : -1);
  if (b(0) === 0xef && b(1) === 0xbb && b(2) === 0xbf) return { encoding: "UTF-8", bom: 3 };
  if (head.length < 4 && !final) return null;
  if ((b(0) === 0xff && b(1) === 0xfe && b(2) === 0 && b(3) === 0) || (b(0) === 0 && b(1) === 0 && b(2) === 0xfe && b(3) === 0xff)) {
    throw new EncodingError(reason, `the file is UTF-32 (its byte-order mark says so), which is not read; ${SAVE_AS}`, 0, false);
  }
  if (b(0) === 0xfe && b(1) === 0xff) return { encoding: "UTF-16BE", bom: 2 };
  if (b(0) === 0xff && b(1) === 0xfe) return { encoding: "UTF-16LE", bom: 2 };
  // JSON opens with ASCII: a NUL in one of the first two bytes and not the other is UTF-16 without its mark.
  if (head.length >= 2 && (b(0) === 0) !== (b(1) === 0)) {
    throw new EncodingError(
      reason,
      `the file looks like UTF-16 without a byte-order mark (a NUL byte at offset ${b(0) === 0 ? 0 : 1}); ${SAVE_AS}`,
      b(0) === 0 ? 0 : 1,
      false,
    );
  }
  return { encoding: "UTF-8", bom: 0 };
}

/** Length of the longest prefix of `buf` that ends on a character boundary (the rest waits for the next chunk). */
function completePrefix(buf: Buffer, encoding: TextEncoding): number {
  if (encoding === "UTF-8") {
    // Back over continuation bytes (at most 3) to the lead byte of the last sequence.
    let i = buf.length - 1;
    while (i >= 0 && i >= buf.length - 4 && ((buf[i] as number) & 0xc0) === 0x80) i--;
    if (i < 0 || i < buf.length - 4) return buf.length;
    const lead = buf[i] as number;
    const need = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 && lead < 0xe0 ? 2 : 1;
    return buf.length - i < need ? i : buf.length;
  }
  let end = buf.length - (buf.length % 2);
  if (end >= 2) {
    const unit = encoding === "UTF-16LE" ? buf.readUInt16LE(end - 2) : buf.readUInt16BE(end - 2);
    if (unit >= 0xd800 && unit <= 0xdbff) end -= 2; // a high surrogate waits for its pair
  }
  return end;
}

function decoderFor(encoding: TextEncoding): TextDecoder {
  return new TextDecoder(encoding.toLowerCase(), { fatal: true, ignoreBOM: true });
}

/** Offset in `part` of the first byte that makes it invalid: the shortest prefix a streaming decoder refuses. */
function firstInvalid(part: Buffer, encoding: TextEncoding): number {
  let lo = 1;
  let hi = part.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    let bad = false;
    try {
      decoderFor(encoding).decode(part.subarray(0, mid), { stream: true });
    } catch {
      bad = true;
    }
    if (bad) hi = mid;
    else lo = mid + 1;
  }
  return lo - 1;
}

function invalidAt(part: Buffer, partOffset: number, encoding: TextEncoding, reason: ReasonCode): EncodingError {
  let at = firstInvalid(part, encoding);
  if (encoding === "UTF-8") {
    // A sequence cut short is refused at the byte after it: name its lead byte instead.
    let j = at - 1;
    while (j >= 0 && j >= at - 3 && ((part[j] as number) & 0xc0) === 0x80) j--;
    if (j >= 0 && j >= at - 3 && (part[j] as number) >= 0xc0) at = j;
  }
  const byte = part[at] ?? 0;
  return new EncodingError(
    reason,
    `not valid ${encoding}: byte 0x${byte.toString(16).padStart(2, "0")} at offset ${partOffset + at} of the file; ${SAVE_AS}`,
    partOffset + at,
    false,
  );
}

/**
 * The text of a byte source in order, with each chunk's raw bytes (for the original of a fault).
 * `reason` is the reason code an EncodingError carries (the reader's MALFORMED_* code).
 */
export async function* decodedText(
  source: ByteSource,
  reason: ReasonCode,
): AsyncGenerator<{ text: string; bytes: Buffer }, void, undefined> {
  let detected: Detected | null = null;
  let head: Buffer = Buffer.alloc(0);
  let pending: Buffer = Buffer.alloc(0); // bytes of one unfinished character
  let offset = 0; // file offset of pending[0]
  let decoder: TextDecoder | null = null;
  let firstText = true;

  /** Decodes pending + bytes up to the last whole character (all of it when final), keeping the rest pending. */
  const decode = (bytes: Buffer, final: boolean): string => {
    const d = detected as Detected;
    const buf = pending.length > 0 ? Buffer.concat([pending, bytes]) : bytes;
    const cut = final ? buf.length : completePrefix(buf, d.encoding);
    const part = buf.subarray(0, cut);
    pending = Buffer.from(buf.subarray(cut));
    decoder ??= decoderFor(d.encoding);
    let text: string;
    try {
      text = decoder.decode(part, { stream: true });
    } catch {
      throw invalidAt(part, offset, d.encoding, reason);
    }
    offset += part.length;
    if (final) {
      try {
        text += decoder.decode();
      } catch {
        throw new EncodingError(reason, `the file ends inside a ${d.encoding} character (truncated?)`, offset, true);
      }
    }
    return text;
  };

  for await (const chunk of chunksOf(source)) {
    if (typeof chunk === "string") {
      let text = chunk;
      if (firstText && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (chunk.length > 0) firstText = false;
      const bytes = Buffer.from(chunk, "utf8");
      if (text.length > 0 || bytes.length > 0) yield { text, bytes };
      continue;
    }
    let bytes = chunk;
    if (!detected) {
      head = head.length > 0 ? Buffer.concat([head, bytes]) : bytes;
      detected = detect(head, false, reason);
      if (!detected) continue;
      firstText = false;
      bytes = head.subarray(detected.bom);
      offset = detected.bom;
      const text = decode(bytes, false);
      yield { text, bytes: head };
      continue;
    }
    const text = decode(bytes, false);
    if (text.length > 0 || bytes.length > 0) yield { text, bytes };
  }
  if (!detected && head.length > 0) {
    detected = detect(head, true, reason) as Detected;
    offset = detected.bom;
    const text = decode(head.subarray(detected.bom), true);
    yield { text, bytes: head };
    return;
  }
  if (detected) {
    const text = decode(Buffer.alloc(0), true);
    if (text.length > 0) yield { text, bytes: Buffer.alloc(0) };
  }
}
