// Codec tests on the real Nitro documents and on hand-altered encodings: exact fields out, strict shape in.
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isCofferError } from '../errors.js';
import { decodeCbor, decodeCoseDocument, encodeCbor, encodeCoseSign1, encodePayload, MAX_DOCUMENT_BYTES } from './codec.js';
import { decodeAttestationDocument } from './index.js';
import { fixture, hex, nitroFixtures, readNitroFile } from './nitro-fixtures.test-util.js';

function expectFormatError(fn: () => unknown, pattern?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isCofferError(e, 'ATTESTATION_FORMAT'), String(e)).toBe(true);
    if (pattern) expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected ATTESTATION_FORMAT');
}

/** Takes a fixture apart into [protected, unprotected, payload map, signature]. */
function parts(bytes: Uint8Array): { prot: Uint8Array; payload: Map<unknown, unknown>; sig: Uint8Array } {
  const top = decodeCbor(bytes) as [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array];
  return { prot: top[0], payload: decodeCbor(top[2]) as Map<unknown, unknown>, sig: top[3] };
}

function rebuild(bytes: Uint8Array, edit: (m: Map<unknown, unknown>) => void): Uint8Array {
  const { prot, payload, sig } = parts(bytes);
  edit(payload);
  return encodeCoseSign1(prot, encodeCbor(payload), sig);
}

const base = fixture('base-nitro-validator.cbor').bytes;

describe('decodeAttestationDocument on real documents', () => {
  it.each(nitroFixtures.map((f) => [f.name, f] as const))('%s decodes to the README facts', (_n, f) => {
    const doc = decodeAttestationDocument(f.bytes);
    expect(doc.digest).toBe('SHA384');
    expect(doc.timestamp.toISOString()).toBe(f.timestamp);
    expect(hex(doc.pcrs.get(0) as Uint8Array).startsWith(f.pcr0Prefix)).toBe(true);
    expect([...doc.pcrs.keys()]).toEqual([...Array(16).keys()]);
    for (const v of doc.pcrs.values()) expect(v.length).toBe(48);
    expect(doc.cabundle).toHaveLength(4);
    expect(new X509Certificate(doc.cabundle[0] as Uint8Array).subject).toContain('CN=aws.nitro-enclaves');
    expect(doc.moduleId).toMatch(/^i-[0-9a-f]+-enc[0-9a-f]+$/);
    expect(doc.raw).toEqual(f.bytes);
  });

  it('reads the optional fields as the README lists them', () => {
    const b = decodeAttestationDocument(base);
    expect(b.publicKey?.length).toBe(65);
    expect(b.userData).toBeNull();
    expect(b.nonce).toBeNull();
    const beta = decodeAttestationDocument(fixture('evervault-beta-valid.cbor').bytes);
    expect(beta.nonce?.length).toBe(256);
    const dbg = decodeAttestationDocument(fixture('evervault-debug-mode.cbor').bytes);
    expect(Buffer.from(dbg.publicKey as Uint8Array).toString()).toBe('my super secret key');
    expect(Buffer.from(dbg.userData as Uint8Array).toString()).toBe('hello, world!');
    expect(hex(dbg.pcrs.get(1) as Uint8Array)).toBe('0'.repeat(96));
    // user_data of the TLS-bound document is the SubjectPublicKeyInfo of the bound certificate
    const tls = decodeAttestationDocument(fixture('evervault-tls-bound.cbor').bytes);
    const spki = new X509Certificate(readNitroFile('evervault-tls-bound-cert.der')).publicKey.export({ type: 'spki', format: 'der' });
    expect(hex(tls.userData as Uint8Array)).toBe(hex(spki));
  });

  it('re-encodes every payload byte-identically (the encoder speaks the Nitro format)', () => {
    for (const f of nitroFixtures) {
      const d = decodeCoseDocument(f.bytes);
      expect(hex(encodePayload(d.document))).toBe(hex(d.payload));
      expect(hex(encodeCoseSign1(d.protectedHeader, d.payload, d.signature))).toBe(hex(f.bytes));
    }
  });

  it('accepts the tagged form (tag 18) and returns copies detached from the input', () => {
    const tagged = new Uint8Array([0xd2, ...base]);
    const doc = decodeAttestationDocument(tagged);
    tagged.fill(0);
    expect(hex(doc.pcrs.get(0) as Uint8Array).startsWith('ec74bfbe')).toBe(true);
  });
});

describe('decodeAttestationDocument refuses anything else', () => {
  it('refuses empty, oversized and non-CBOR input before or while parsing', () => {
    expectFormatError(() => decodeAttestationDocument(new Uint8Array()), /size/);
    expectFormatError(() => decodeAttestationDocument(new Uint8Array(MAX_DOCUMENT_BYTES + 1)), /size/);
    expectFormatError(() => decodeAttestationDocument(new Uint8Array([0xff, 0x00])));
    expectFormatError(() => decodeAttestationDocument('abc' as unknown as Uint8Array), /bytes/);
  });

  it('refuses trailing bytes, other tags and indefinite lengths', () => {
    expectFormatError(() => decodeAttestationDocument(new Uint8Array([...base, 0x00])), /CBOR|strict/);
    expectFormatError(() => decodeAttestationDocument(new Uint8Array([0xd8, 0x13, ...base])));
    const indefinite = new Uint8Array([0x9f, ...base.subarray(1), 0xff]);
    expectFormatError(() => decodeAttestationDocument(indefinite));
  });

  it('refuses a wrong COSE structure', () => {
    const { prot, payload, sig } = parts(base);
    const p = encodeCbor(payload);
    expectFormatError(() => decodeAttestationDocument(encodeCbor([Buffer.from(prot), new Map(), Buffer.from(p)])), /4 items/);
    expectFormatError(() => decodeAttestationDocument(encodeCbor([Buffer.from(prot), new Map([[4, Buffer.from('kid')]]), Buffer.from(p), Buffer.from(sig)])), /unprotected/);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(prot, p, sig.subarray(0, 64))), /96 bytes/);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(encodeCbor(new Map([[1, -7]])), p, sig)), /ES384/);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(encodeCbor(new Map<number, unknown>([[1, -35], [4, 'x']])), p, sig)), /ES384/);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(prot, encodeCbor([1, 2]), sig)), /map/);
  });

  it('refuses unknown and missing fields', () => {
    expectFormatError(() => decodeAttestationDocument(rebuild(base, (m) => m.set('extra', null))), /unknown payload field "extra"/);
    expectFormatError(() => decodeAttestationDocument(rebuild(base, (m) => m.set(7, 'x'))), /unknown payload field/);
    for (const f of ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle']) {
      expectFormatError(() => decodeAttestationDocument(rebuild(base, (m) => m.delete(f))), new RegExp(`missing payload field ${f}`));
    }
    // the optional ones may be absent
    expect(decodeAttestationDocument(rebuild(base, (m) => m.delete('nonce'))).nonce).toBeNull();
  });

  it('refuses wrong field types and sizes', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['module_id', Buffer.from('x'), /module_id/],
      ['module_id', '', /module_id/],
      ['digest', 'SHA256', /digest/],
      ['timestamp', -1, /timestamp/],
      ['timestamp', 1.5, /timestamp/],
      ['timestamp', '2024', /timestamp/],
      ['timestamp', 1732983768387, /timestamp/], // a float64 (cbor-x encodes large numbers as floats)
      ['timestamp', 1732983768387.5, /timestamp/],
      ['nonce', undefined, /nonce/], // CBOR undefined is not null
      ['pcrs', new Map(), /pcrs/],
      ['pcrs', new Map([[0, Buffer.alloc(20)]]), /pcr 0/],
      ['pcrs', new Map([[32, Buffer.alloc(48)]]), /index/],
      ['pcrs', new Map([['0', Buffer.alloc(48)]]), /index/],
      ['pcrs', new Map([[0, new Uint8Array(48)]]), /byte string/], // tag 64 typed array, not a byte string
      ['certificate', 'pem', /certificate/],
      ['certificate', Buffer.alloc(2000), /certificate/],
      ['cabundle', [], /cabundle/],
      ['cabundle', Buffer.alloc(10), /cabundle/],
      ['cabundle', ['x'], /cabundle\[0\]/],
      ['public_key', Buffer.alloc(0), /public_key/],
      ['public_key', Buffer.alloc(1025), /public_key/],
      ['user_data', Buffer.alloc(513), /user_data/],
      ['nonce', 'n', /nonce/],
      ['nonce', Buffer.alloc(513), /nonce/],
    ];
    for (const [field, value, pattern] of cases) {
      expectFormatError(() => decodeAttestationDocument(rebuild(base, (m) => m.set(field, value))), pattern);
    }
  });

  it('refuses duplicate keys and non-minimal integers that a lenient parser would accept', () => {
    // duplicate "nonce": rename the key "user_data" to a second "nonce" of the same length is not possible,
    // so build the payload with a placeholder key and patch its text to collide
    const { prot, payload, sig } = parts(base);
    payload.set('noncX', Buffer.from('attacker'));
    const p = Buffer.from(encodeCbor(payload));
    const at = p.indexOf(Buffer.from('noncX'));
    p.write('nonce', at);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(prot, p, sig)), /strict encoding/);

    // digest "SHA384" with its text length written non-minimally (0x78 0x06 instead of 0x66)
    const q = Buffer.from(encodeCbor(parts(base).payload));
    const d = q.indexOf(Buffer.from([0x66, ...Buffer.from('SHA384')]));
    const nonMinimal = Buffer.concat([q.subarray(0, d), Buffer.from([0x78, 0x06]), q.subarray(d + 1)]);
    expectFormatError(() => decodeAttestationDocument(encodeCoseSign1(prot, nonMinimal, sig)), /strict encoding/);
  });
});
