// Canonical, unambiguous byte encoding of the metadata records the enclave MACs (docs/format.md "Metadata MAC
// v1"). Every value is typed and length-prefixed, so no two different field lists encode to the same bytes:
// null ≠ "" ≠ 0, ("ab","c") ≠ ("a","bc"), and a list carries its count.
import { CofferError, ErrorCode } from '../../src/errors.js';
import { isWellFormed } from '../../src/unicode.js';

export const TAG_NULL = 0x00;
export const TAG_BYTES = 0x01;
export const TAG_UINT = 0x02;
export const TAG_LIST = 0x03;

/** A field value: a string (UTF-8), raw bytes, a non-negative safe integer, null, or a list of values. */
export type Field = string | Uint8Array | number | null | readonly Field[];

/** The MAC message prefix: the domain string, a zero byte, the format version. */
export const DOMAIN = 'coffer-metadata-mac';
export const FORMAT_VERSION = 1;

/**
 * `DOMAIN ‖ 0x00 ‖ version(u8) ‖ kind(u8) ‖ field…`.
 * @throws CofferError INVALID_ARGUMENT for a value with no canonical form (negative or unsafe integer, a string
 *   that is not well-formed Unicode, a field longer than 2^32-1 bytes).
 */
export function encodeMessage(kind: number, fields: readonly Field[]): Buffer {
  const parts: Buffer[] = [Buffer.from(DOMAIN, 'ascii'), Buffer.from([0, FORMAT_VERSION, kind])];
  for (const f of fields) encodeField(f, parts);
  return Buffer.concat(parts);
}

function encodeField(f: Field, out: Buffer[]): void {
  if (f === null) {
    out.push(Buffer.from([TAG_NULL]));
  } else if (typeof f === 'string') {
    if (!isWellFormed(f)) throw bad('a string field is not well-formed Unicode');
    bytes(Buffer.from(f, 'utf8'), out);
  } else if (f instanceof Uint8Array) {
    bytes(Buffer.from(f.buffer, f.byteOffset, f.byteLength), out);
  } else if (typeof f === 'number') {
    if (!Number.isSafeInteger(f) || f < 0) throw bad(`integer field ${f} is not a non-negative safe integer`);
    const b = Buffer.alloc(9);
    b[0] = TAG_UINT;
    b.writeBigUInt64BE(BigInt(f), 1);
    out.push(b);
  } else {
    const head = Buffer.alloc(5);
    head[0] = TAG_LIST;
    head.writeUInt32BE(f.length, 1);
    out.push(head);
    for (const x of f) encodeField(x, out);
  }
}

function bytes(b: Buffer, out: Buffer[]): void {
  if (b.length > 0xffffffff) throw bad('field longer than 2^32-1 bytes');
  const head = Buffer.alloc(5);
  head[0] = TAG_BYTES;
  head.writeUInt32BE(b.length, 1);
  out.push(head, b);
}

const bad = (m: string): CofferError => new CofferError(ErrorCode.INVALID_ARGUMENT, `metadata MAC encoding: ${m}`);
