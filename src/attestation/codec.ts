// Codec of AWS Nitro attestation documents: COSE_Sign1 (RFC 9052 §4.2, tag 18 optional) whose payload is the
// Nitro CBOR map (AWS "Verifying the root of trust", CDDL of AttestationDocument). Decoding is strict and
// fails closed: size limits before parsing, the CBOR parsed by cbor-x, then the exact shape checked, and the
// bytes must re-encode identically (which refuses duplicate map keys, non-minimal or indefinite lengths,
// trailing bytes and stray tags without a hand-written parser). Encoding helpers serve the simulated NSM.
import { Decoder, Encoder, Tag } from 'cbor-x';
import { CofferError, ErrorCode } from '../errors.js';
import type { AttestationDocument } from './types.js';

/** Upper bound on a whole document: the CDDL limits (5 certs × 1024, key 1024, data 2 × 512, 32 PCRs) fit. */
export const MAX_DOCUMENT_BYTES = 16 * 1024;
const MAX_CERT_BYTES = 1024; // CDDL: cert = bytes .size (1..1024)
const MAX_CABUNDLE = 8;
const MAX_MODULE_ID = 256;
/** COSE algorithm id of ES384 (RFC 9053 §2.1). */
export const COSE_ALG_ES384 = -35;
const COSE_SIGN1_TAG = 18;
const ES384_SIGNATURE_BYTES = 96;

const FIELDS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'] as const;
const OPTIONAL = new Set<string>(['public_key', 'user_data', 'nonce']);
const BYTES_LIMITS: Record<string, [number, number]> = { public_key: [1, 1024], user_data: [0, 512], nonce: [0, 512] };

// Maps decode as Map (keys keep their CBOR type); no record extension, so only plain CBOR comes through.
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
const encoder = new Encoder({ mapsAsObjects: false, useRecords: false });

/** A decoded COSE_Sign1 with the pieces the verifier needs (signature input and value). */
export interface DecodedCoseDocument {
  document: AttestationDocument;
  protectedHeader: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
}

function formatError(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.ATTESTATION_FORMAT, `attestation document: ${message}`, cause === undefined ? {} : { cause });
}

/** Parses one CBOR item and insists the input is exactly its canonical re-encoding. */
function strictDecode(bytes: Uint8Array, what: string): unknown {
  // cbor-x yields byte strings as Buffers only when given a Buffer (a view, no copy), which the shape checks rely on.
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let value: unknown;
  try {
    value = decoder.decode(input);
  } catch (e) {
    throw formatError(`${what} is not well-formed CBOR`, e);
  }
  let again: Uint8Array;
  try {
    again = encoder.encode(value);
  } catch (e) {
    throw formatError(`${what} holds values outside the Nitro format`, e);
  }
  if (Buffer.compare(Buffer.from(again), input) !== 0) {
    throw formatError(`${what} is not in the strict encoding (duplicate keys, non-minimal lengths, tags or trailing bytes)`);
  }
  return value;
}

function isByteString(v: unknown): v is Buffer {
  // cbor-x yields a Buffer for CBOR major type 2; a tagged typed array (tag 64) comes back as a plain Uint8Array.
  return Buffer.isBuffer(v);
}

function bytesField(v: unknown, name: string, min: number, max: number): Uint8Array {
  if (!isByteString(v)) throw formatError(`${name} must be a byte string`);
  if (v.length < min || v.length > max) throw formatError(`${name} must be ${min}..${max} bytes, got ${v.length}`);
  return new Uint8Array(v); // a copy, detached from the input buffer
}

function parsePayload(payload: Map<unknown, unknown>, raw: Uint8Array): AttestationDocument {
  for (const key of payload.keys()) {
    if (typeof key !== 'string' || !(FIELDS as readonly string[]).includes(key)) throw formatError(`unknown payload field ${JSON.stringify(String(key))}`);
  }
  for (const f of FIELDS) if (!OPTIONAL.has(f) && !payload.has(f)) throw formatError(`missing payload field ${f}`);

  const moduleId = payload.get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0 || moduleId.length > MAX_MODULE_ID) throw formatError('module_id must be non-empty text');
  if (payload.get('digest') !== 'SHA384') throw formatError('digest must be "SHA384"');

  const ts = payload.get('timestamp');
  // cbor-x yields a bigint for a 64-bit unsigned integer and a number for a float; a number is only
  // trustworthy as an integer below 2^32 (the strict re-encoding check then proves it was not a float)
  const tsNum = typeof ts === 'bigint' ? ts : typeof ts === 'number' && Number.isInteger(ts) && ts >= 0 && ts < 2 ** 32 ? BigInt(ts) : null;
  if (tsNum === null || tsNum <= 0n || tsNum > 8_640_000_000_000_000n) throw formatError('timestamp must be an unsigned integer of milliseconds');

  const pcrsIn = payload.get('pcrs');
  if (!(pcrsIn instanceof Map) || pcrsIn.size === 0 || pcrsIn.size > 32) throw formatError('pcrs must be a map of 1..32 entries');
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, value] of pcrsIn) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 31) throw formatError('pcr index must be an integer 0..31');
    const pcr = bytesField(value, `pcr ${index}`, 32, 64);
    if (![32, 48, 64].includes(pcr.length)) throw formatError(`pcr ${index} must be 32, 48 or 64 bytes`);
    pcrs.set(index, pcr);
  }

  const certificate = bytesField(payload.get('certificate'), 'certificate', 1, MAX_CERT_BYTES);
  const bundleIn = payload.get('cabundle');
  if (!Array.isArray(bundleIn) || bundleIn.length === 0 || bundleIn.length > MAX_CABUNDLE) throw formatError(`cabundle must be an array of 1..${MAX_CABUNDLE} certificates`);
  const cabundle = bundleIn.map((c: unknown, i) => bytesField(c, `cabundle[${i}]`, 1, MAX_CERT_BYTES));

  const optional = (name: string): Uint8Array | null => {
    if (!payload.has(name)) return null; // absent and null both mean "not given"; CBOR undefined does not
    const v = payload.get(name);
    if (v === null) return null;
    const [min, max] = BYTES_LIMITS[name] ?? [0, 0];
    return bytesField(v, name, min, max);
  };

  return {
    moduleId,
    digest: 'SHA384',
    timestamp: new Date(Number(tsNum)),
    pcrs,
    certificate,
    cabundle,
    publicKey: optional('public_key'),
    userData: optional('user_data'),
    nonce: optional('nonce'),
    raw: new Uint8Array(raw),
  };
}

/**
 * Decodes a COSE_Sign1 Nitro document and returns its parts, without verifying anything cryptographic.
 * Throws CofferError ATTESTATION_FORMAT for anything that is not exactly the Nitro format.
 */
export function decodeCoseDocument(bytes: Uint8Array): DecodedCoseDocument {
  if (!(bytes instanceof Uint8Array)) throw formatError('input must be bytes');
  if (bytes.length === 0 || bytes.length > MAX_DOCUMENT_BYTES) throw formatError(`size must be 1..${MAX_DOCUMENT_BYTES} bytes, got ${bytes.length}`);
  let top = strictDecode(bytes, 'COSE_Sign1');
  if (top instanceof Tag) {
    if (top.tag !== COSE_SIGN1_TAG) throw formatError(`unexpected CBOR tag ${top.tag} (only 18, COSE_Sign1)`);
    top = top.value;
  }
  if (!Array.isArray(top) || top.length !== 4) throw formatError('COSE_Sign1 must be an array of 4 items');
  const [protectedHeader, unprotected, payload, signature] = top as unknown[];
  if (!isByteString(protectedHeader) || !isByteString(payload) || !isByteString(signature)) throw formatError('COSE_Sign1 protected header, payload and signature must be byte strings');
  if (!(unprotected instanceof Map) || unprotected.size !== 0) throw formatError('COSE_Sign1 unprotected header must be an empty map');
  if (signature.length !== ES384_SIGNATURE_BYTES) throw formatError(`ES384 signature must be ${ES384_SIGNATURE_BYTES} bytes`);

  const header = strictDecode(protectedHeader, 'protected header');
  if (!(header instanceof Map) || header.size !== 1 || header.get(1) !== COSE_ALG_ES384) throw formatError('protected header must be exactly { alg: ES384 (-35) }');

  const map = strictDecode(payload, 'payload');
  if (!(map instanceof Map)) throw formatError('payload must be a CBOR map');
  return {
    document: parsePayload(map, bytes),
    protectedHeader: new Uint8Array(protectedHeader),
    payload: new Uint8Array(payload),
    signature: new Uint8Array(signature),
  };
}

/** Decodes a Nitro attestation document (shape only; no signature or chain check). Throws ATTESTATION_FORMAT. */
export function decodeAttestationDocument(bytes: Uint8Array): AttestationDocument {
  return decodeCoseDocument(bytes).document;
}

/** The COSE Sig_structure for COSE_Sign1 (RFC 9052 §4.4): ["Signature1", protected, external_aad = h'', payload]. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return new Uint8Array(encoder.encode(['Signature1', Buffer.from(protectedHeader), Buffer.alloc(0), Buffer.from(payload)]));
}

/** The protected header every Nitro document carries: { 1 (alg): -35 (ES384) }. */
export function es384ProtectedHeader(): Uint8Array {
  return new Uint8Array(encoder.encode(new Map([[1, COSE_ALG_ES384]])));
}

/** Fields of a payload to encode (the simulated NSM and tests build documents with it). */
export type PayloadFields = Omit<AttestationDocument, 'digest' | 'raw'>;

/** Encodes a payload map in the Nitro field order, with bytes as plain byte strings and the timestamp as uint. */
export function encodePayload(f: PayloadFields): Uint8Array {
  const b = (u: Uint8Array | null): Buffer | null => (u === null ? null : Buffer.from(u));
  const encoded = encoder.encode(
    new Map<string, unknown>([
      ['module_id', f.moduleId],
      ['digest', 'SHA384'],
      ['timestamp', BigInt(f.timestamp.getTime())],
      ['pcrs', new Map([...f.pcrs].map(([i, v]) => [i, Buffer.from(v)]))],
      ['certificate', Buffer.from(f.certificate)],
      ['cabundle', f.cabundle.map((c) => Buffer.from(c))],
      ['public_key', b(f.publicKey)],
      ['user_data', b(f.userData)],
      ['nonce', b(f.nonce)],
    ]),
  );
  return new Uint8Array(encoded);
}

/** Encodes an untagged COSE_Sign1 array (as the NSM emits it). */
export function encodeCoseSign1(protectedHeader: Uint8Array, payload: Uint8Array, signature: Uint8Array): Uint8Array {
  return new Uint8Array(encoder.encode([Buffer.from(protectedHeader), new Map(), Buffer.from(payload), Buffer.from(signature)]));
}

/** Re-encodes any CBOR value with the codec's settings (tests use it to build altered documents). */
export function encodeCbor(value: unknown): Uint8Array {
  return new Uint8Array(encoder.encode(value));
}

/** Decodes any CBOR value leniently (tests use it to take documents apart). */
export function decodeCbor(bytes: Uint8Array): unknown {
  return decoder.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
