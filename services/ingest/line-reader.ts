/**
 * Splits an import object's byte stream into lines without decoding it, so each line keeps the
 * exact bytes the force sent (what a dead-letter record carries) and the reader knows exactly how
 * many bytes it has consumed. Memory stays bounded whatever the object holds: a line longer than
 * `maxLineBytes` keeps only its first `keepBytes` and the rest is counted and dropped, so an object
 * with no line breaks at all is never buffered whole.
 *
 * Line breaks are the ones node:readline knows (LF, CRLF, a lone CR), also when a CRLF is split
 * between two chunks, so line numbers match what a text editor shows.
 */

const LF = 0x0a;
const CR = 0x0d;

export interface Line {
  /** The line without its break; an over-long line only its first `keepBytes`. */
  readonly bytes: Buffer;
  /** The line's whole length in bytes, without its break. */
  readonly length: number;
  /** Bytes of the stream consumed up to the end of this line's break. */
  readonly end: number;
}

export interface LineLimits {
  /** Lines up to this long come whole. */
  readonly maxLineBytes: number;
  /** What is kept of a longer line. */
  readonly keepBytes: number;
}

export async function* readLines(source: AsyncIterable<Uint8Array | string>, limits: LineLimits): AsyncGenerator<Line> {
  const cap = Math.max(limits.maxLineBytes, limits.keepBytes);
  let parts: Buffer[] = [];
  let kept = 0;
  let length = 0;
  let offset = 0;
  /** A line ended by a CR at the very end of a chunk: a LF starting the next chunk belongs to its break. */
  let afterCr: Buffer | null = null;
  let afterCrLength = 0;

  const append = (b: Buffer) => {
    length += b.length;
    if (kept < cap && b.length > 0) {
      const part = b.length <= cap - kept ? b : b.subarray(0, cap - kept);
      parts.push(part);
      kept += part.length;
    }
  };
  const take = (): Buffer => {
    const whole = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, kept);
    // A copy, so an over-long line does not pin the chunks it was cut from.
    const bytes = length > limits.maxLineBytes ? Buffer.from(whole.subarray(0, limits.keepBytes)) : whole;
    parts = [];
    kept = 0;
    length = 0;
    return bytes;
  };

  for await (const raw of source) {
    const chunk =
      typeof raw === "string"
        ? Buffer.from(raw, "utf8")
        : Buffer.isBuffer(raw)
          ? raw
          : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (chunk.length === 0) continue;
    let i = 0;
    if (afterCr !== null) {
      if (chunk[0] === LF) {
        i = 1;
        offset += 1;
      }
      const bytes = afterCr;
      afterCr = null;
      yield { bytes, length: afterCrLength, end: offset };
    }
    // Next break positions, each searched again only once passed (-1: none left in this chunk).
    let nextLf = chunk.indexOf(LF, i);
    let nextCr = chunk.indexOf(CR, i);
    while (i < chunk.length) {
      if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
      if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
      const at = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
      if (at === -1) {
        append(chunk.subarray(i));
        offset += chunk.length - i;
        break;
      }
      append(chunk.subarray(i, at));
      offset += at - i;
      if (chunk[at] === CR && at + 1 === chunk.length) {
        offset += 1;
        afterCrLength = length;
        afterCr = take();
        i = at + 1;
        break;
      }
      const breakLength = chunk[at] === CR && chunk[at + 1] === LF ? 2 : 1;
      offset += breakLength;
      i = at + breakLength;
      const lineLength = length;
      yield { bytes: take(), length: lineLength, end: offset };
    }
  }
  if (afterCr !== null) yield { bytes: afterCr, length: afterCrLength, end: offset };
  else if (length > 0) {
    const lineLength = length;
    yield { bytes: take(), length: lineLength, end: offset };
  }
}
