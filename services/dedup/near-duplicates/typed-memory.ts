/**
 * Frees the near-duplicate indexes' typed arrays as soon as an index is done with them. Their memory
 * lives outside the V8 heap and is freed only when V8 collects the array object, which after a
 * rebuild can be long after the new tables were built beside the old ones: a large index would then
 * hold old and new tables, and the build's scratch, at once. ES2024's ArrayBuffer.prototype.transfer
 * (Node 24) moves a buffer's contents to a new buffer and detaches the old one, which frees its memory
 * there and then; it is typed here because the project compiles against the ES2022 library.
 *
 * Invariant: only arrays an index owns alone (a whole buffer of their own, no other view of it) and
 * no longer reads are passed here; a detached array reads as empty.
 */

interface TransferableBuffer {
  transfer(newByteLength?: number): ArrayBuffer;
}

type Owned = Uint8Array | Uint32Array | Float64Array;

function transfer(a: Owned, byteLength: number): ArrayBuffer {
  if (a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength)
    throw new Error("only an array over a whole buffer of its own can be moved");
  return (a.buffer as unknown as TransferableBuffer).transfer(byteLength);
}

/** Frees each array's memory now; none of them may be used again. */
export function release(...arrays: readonly (Owned | null | undefined)[]): void {
  for (const a of arrays) if (a && a.buffer.byteLength > 0) transfer(a, 0);
}

/** The same elements in an array of `length` (zeros after them); `a` is freed at once. */
export function resized<T extends Owned>(a: T, length: number): T {
  const Make = a.constructor as new (buffer: ArrayBuffer) => T;
  return new Make(transfer(a, length * a.BYTES_PER_ELEMENT));
}
