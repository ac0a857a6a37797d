/**
 * CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form, as the Avro
 * specification defines it for single-object encoding. avsc offers only md5/sha hashes,
 * so this small piece is ours.
 *
 * Frozen contract: the fingerprint is in the header of every encoded record and partners compute
 * it too. Changing it makes every stored record and every partner's decoder disagree; a new
 * record shape is a new schema version in schemas/history/, never a new fingerprint function.
 */
const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;

const TABLE: bigint[] = (() => {
  const table: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) {
      fp = (fp >> 1n) ^ (EMPTY & (-(fp & 1n) & MASK));
    }
    table.push(fp);
  }
  return table;
})();

/** The 64-bit fingerprint as an unsigned bigint. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) {
    fp = (fp >> 8n) ^ (TABLE[Number((fp ^ BigInt(b)) & 0xffn)] as bigint);
  }
  return fp;
}

/** Fingerprint of a canonical-form schema string, as the 8 little-endian bytes single-object encoding writes. */
export function fingerprintBytes(canonicalForm: string): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64Avro(Buffer.from(canonicalForm, "utf8")));
  return out;
}
