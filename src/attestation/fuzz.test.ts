// Property tests (fast-check) of the codec and the verifier: random bytes, random mutations of the real
// documents and re-encoded payload maps with extra or missing fields produce only typed CofferErrors —
// never another exception, and never an acceptance.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCofferError } from '../errors.js';
import { decodeCbor, decodeCoseDocument, encodeCbor, encodeCoseSign1 } from './codec.js';
import { decodeAttestationDocument, verifyAttestationDocument } from './index.js';
import { atDocumentTime, nitroFixtures } from './nitro-fixtures.test-util.js';

const REFUSALS = new Set(['ATTESTATION_FORMAT', 'ATTESTATION_INVALID']);

function refuses(fn: () => unknown, codes = REFUSALS): void {
  let accepted = false;
  try {
    fn();
    accepted = true;
  } catch (e) {
    if (!isCofferError(e) || !codes.has(e.code)) throw new Error(`untyped or unexpected error: ${String(e)}`, { cause: e });
  }
  if (accepted) throw new Error('accepted a document it should have refused');
}

const fixtureArb = fc.constantFrom(...nitroFixtures);

/** One edit of a byte string: overwrite, insert, delete a range, or truncate. */
const editArb = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
type Edit = typeof editArb extends fc.Arbitrary<infer T> ? T : never;

function applyEdit(b: Uint8Array, e: Edit): Uint8Array {
  const at = e.at % (b.length + 1);
  switch (e.kind) {
    case 'set': {
      const c = new Uint8Array(b);
      if (at < c.length) c[at] = e.value;
      return c;
    }
    case 'insert':
      return new Uint8Array([...b.subarray(0, at), ...e.bytes, ...b.subarray(at)]);
    case 'delete':
      return new Uint8Array([...b.subarray(0, at), ...b.subarray(at + e.length)]);
    case 'truncate':
      return b.subarray(0, at);
  }
}

/** The same document in another wrapper is no mutation (tag 18 is allowed by the format). */
function sameDocument(a: Uint8Array, original: Uint8Array): boolean {
  const strip = a[0] === 0xd2 ? a.subarray(1) : a;
  return Buffer.from(strip).equals(Buffer.from(original));
}

describe('fuzzing the codec and the verifier', () => {
  it('random bytes: only ATTESTATION_FORMAT from the codec, only typed refusals from the verifier', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 3000 }),
      fc.uint8Array({ maxLength: 3000 }).map((u) => new Uint8Array([0x84, ...u])), // a 4-array head goes deeper
      fc.uint8Array({ maxLength: 3000 }).map((u) => new Uint8Array([0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, ...u])),
    );
    fc.assert(
      fc.property(bytesArb, (bytes) => {
        refuses(() => decodeAttestationDocument(bytes), new Set(['ATTESTATION_FORMAT']));
        refuses(() => verifyAttestationDocument(bytes, { root: { kind: 'aws' } }));
      }),
      { numRuns: 400 },
    );
  });

  it('random mutations of real documents are never accepted', () => {
    fc.assert(
      fc.property(fixtureArb, fc.array(editArb, { minLength: 1, maxLength: 4 }), (f, edits) => {
        const mutated = edits.reduce(applyEdit, f.bytes);
        fc.pre(!sameDocument(mutated, f.bytes));
        refuses(() => verifyAttestationDocument(mutated, { root: { kind: 'aws' }, now: atDocumentTime(f) }));
      }),
      { numRuns: 300 },
    );
  });

  it('random mutations inside the signed payload are never accepted, even re-wrapped in valid COSE', () => {
    fc.assert(
      fc.property(fixtureArb, fc.array(editArb, { minLength: 1, maxLength: 3 }), (f, edits) => {
        const d = decodeCoseDocument(f.bytes);
        const payload = edits.reduce(applyEdit, d.payload);
        fc.pre(!Buffer.from(payload).equals(Buffer.from(d.payload)));
        refuses(() => verifyAttestationDocument(encodeCoseSign1(d.protectedHeader, payload, d.signature), { root: { kind: 'aws' }, now: atDocumentTime(f) }));
      }),
      { numRuns: 300 },
    );
  });

  it('re-encoded payload maps with extra or missing fields are refused', () => {
    const fields = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce'];
    const valueArb = fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)), fc.array(fc.integer(), { maxLength: 3 }));
    const keyArb = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 40 }), fc.constantFrom(...fields));
    fc.assert(
      fc.property(
        fixtureArb,
        fc.subarray(fields),
        fc.array(fc.tuple(keyArb, valueArb), { maxLength: 3 }),
        (f, remove, add) => {
          const d = decodeCoseDocument(f.bytes);
          const map = decodeCbor(d.payload) as Map<unknown, unknown>;
          for (const k of remove) map.delete(k);
          for (const [k, v] of add) map.set(k, v);
          const payload = encodeCbor(map);
          fc.pre(!Buffer.from(payload).equals(Buffer.from(d.payload)));
          const bytes = encodeCoseSign1(d.protectedHeader, payload, d.signature);
          // an unknown key, or a mandatory one left out, must fail to decode (a known key with a well-typed
          // value may decode; the signature check below still refuses it)
          const keys = [...map.keys()];
          const unknownAdded = keys.some((k) => typeof k !== 'string' || !fields.includes(k));
          const mandatoryMissing = fields.slice(0, 6).some((k) => !map.has(k));
          if (unknownAdded || mandatoryMissing) refuses(() => decodeAttestationDocument(bytes), new Set(['ATTESTATION_FORMAT']));
          // whatever the codec says, the signature no longer covers these bytes
          refuses(() => verifyAttestationDocument(bytes, { root: { kind: 'aws' }, now: atDocumentTime(f) }));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the codec still accepts every real document (the properties above are not vacuous)', () => {
    for (const f of nitroFixtures) expect(decodeAttestationDocument(f.bytes).digest).toBe('SHA384');
  });
});
