// Verifier and policy tests on the real Nitro documents: each is accepted at its own time with its own PCR0,
// and refused for a wrong PCR, an empty policy, an expired leaf, a stale or future timestamp, a changed byte,
// a swapped certificate, a different root and a missing or different nonce.
import { describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import { decodeCbor, decodeCoseDocument, encodeCbor, encodeCoseSign1 } from './codec.js';
import {
  AWS_NITRO_ROOT_G1_PEM,
  decodeAttestationDocument,
  enforcePcrPolicy,
  verifyAttestation,
  verifyAttestationDocument,
  type PcrPolicy,
  type VerifyOptions,
} from './index.js';
import { atDocumentTime, fixture, hex, nitroFixtures, type NitroFixture } from './nitro-fixtures.test-util.js';

const aws = { kind: 'aws' } as const;

function expectCode(fn: () => unknown, code: ErrorCode, pattern?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isCofferError(e, code), String(e)).toBe(true);
    if (pattern) expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected ${code}, but it was accepted`);
}

function ownPolicy(f: NitroFixture): PcrPolicy {
  const doc = decodeAttestationDocument(f.bytes);
  return { pcrs: { 0: hex(doc.pcrs.get(0) as Uint8Array) }, allowDebugMode: f.debugMode };
}

const base = fixture('base-nitro-validator.cbor');
const beta = fixture('evervault-beta-valid.cbor');

describe('accepts each real document at its own time with its own PCR0', () => {
  it.each(nitroFixtures.map((f) => [f.name, f] as const))('%s', (_n, f) => {
    const doc = verifyAttestation(f.bytes, { root: aws, now: atDocumentTime(f), pcrPolicy: ownPolicy(f) });
    expect(doc.timestamp.toISOString()).toBe(f.timestamp);
    // also at the edge of the default maximum age (5 min) and in tagged form
    verifyAttestationDocument(f.bytes, { root: aws, now: atDocumentTime(f, 5 * 60 * 1000) });
    verifyAttestationDocument(new Uint8Array([0xd2, ...f.bytes]), { root: aws, now: atDocumentTime(f) });
  });

  it('accepts a policy over several PCRs and "any of" lists', () => {
    const doc = decodeAttestationDocument(base.bytes);
    const pcrs: Record<number, string | string[]> = {};
    for (const i of [0, 1, 2, 3, 4]) pcrs[i] = hex(doc.pcrs.get(i) as Uint8Array);
    pcrs[0] = ['a'.repeat(96), hex(doc.pcrs.get(0) as Uint8Array).toUpperCase()];
    verifyAttestation(base.bytes, { root: aws, now: atDocumentTime(base), pcrPolicy: { pcrs } });
  });
});

describe('PCR policy fails closed', () => {
  const doc = decodeAttestationDocument(base.bytes);
  const pcr0 = hex(doc.pcrs.get(0) as Uint8Array);
  it('refuses a wrong PCR value, a PCR the document lacks, and a mismatch on any listed PCR', () => {
    expectCode(() => enforcePcrPolicy(doc, { pcrs: { 0: 'ab'.repeat(48) } }), 'ATTESTATION_POLICY', /PCR0/);
    expectCode(() => enforcePcrPolicy(doc, { pcrs: { 0: pcr0, 20: 'ab'.repeat(48) } }), 'ATTESTATION_POLICY', /no PCR20/);
    expectCode(() => enforcePcrPolicy(doc, { pcrs: { 0: pcr0, 1: pcr0 } }), 'ATTESTATION_POLICY', /PCR1/);
    expectCode(() => verifyAttestation(base.bytes, { root: aws, now: atDocumentTime(base), pcrPolicy: { pcrs: { 0: 'cd'.repeat(48) } } }), 'ATTESTATION_POLICY');
  });
  it('denies an empty, missing or malformed policy', () => {
    for (const p of [undefined, null, {} as PcrPolicy, { pcrs: {} }, { pcrs: { 0: [] } }, { pcrs: { 0: pcr0.slice(2) } }, { pcrs: { 0: `zz${pcr0.slice(2)}` } }, { pcrs: { 32: pcr0 } }, { pcrs: { '-1': pcr0 } as unknown as PcrPolicy['pcrs'] }, { pcrs: { 0: 5 as unknown as string } }]) {
      expectCode(() => enforcePcrPolicy(doc, p), 'ATTESTATION_POLICY');
    }
    expectCode(() => verifyAttestation(base.bytes, { root: aws, now: atDocumentTime(base), pcrPolicy: { pcrs: {} } }), 'ATTESTATION_POLICY', /no PCR/);
  });
  it('refuses debug-mode (all-zero) PCRs unless allowDebugMode is set', () => {
    const dbg = fixture('evervault-debug-mode.cbor');
    const d = verifyAttestationDocument(dbg.bytes, { root: aws, now: atDocumentTime(dbg) }); // chain and signature are fine
    expectCode(() => enforcePcrPolicy(d, { pcrs: { 0: '0'.repeat(96) } }), 'ATTESTATION_POLICY', /debug/);
    enforcePcrPolicy(d, { pcrs: { 0: '0'.repeat(96) }, allowDebugMode: true });
    expectCode(() => enforcePcrPolicy(d, { pcrs: { 0: pcr0 } }), 'ATTESTATION_POLICY');
    // a debug enclave keeps its real PCR3 (IAM role): a policy pinning only that must still refuse it
    const pcr3 = hex(d.pcrs.get(3) as Uint8Array);
    expect(pcr3).not.toBe('0'.repeat(96));
    expectCode(() => enforcePcrPolicy(d, { pcrs: { 3: pcr3 } }), 'ATTESTATION_POLICY', /debug-mode enclave/);
    enforcePcrPolicy(d, { pcrs: { 3: pcr3 }, allowDebugMode: true });
  });
});

describe('refuses documents that do not verify', () => {
  it('refuses at a clock past the leaf notAfter or before its notBefore, even with a large maxAge', () => {
    const long = { root: aws, maxAgeMs: 365 * 24 * 3600 * 1000 } satisfies VerifyOptions;
    for (const f of nitroFixtures) {
      expectCode(() => verifyAttestationDocument(f.bytes, { ...long, now: atDocumentTime(f, 4 * 3600 * 1000) }), 'ATTESTATION_INVALID', /expired/);
      expectCode(() => verifyAttestationDocument(f.bytes, { ...long, now: atDocumentTime(f, -3600 * 1000) }), 'ATTESTATION_INVALID', /not valid yet/);
    }
  });
  it('refuses a stale document (maxAge) and one from the future (beyond the skew)', () => {
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, now: atDocumentTime(base, 7 * 60 * 1000) }), 'ATTESTATION_INVALID', /older than/);
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, now: atDocumentTime(base, 20_000), maxAgeMs: 10_000, clockSkewMs: 0 }), 'ATTESTATION_INVALID', /older than/);
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, now: atDocumentTime(base, -2000), clockSkewMs: 0 }), 'ATTESTATION_INVALID', /future/);
    verifyAttestationDocument(base.bytes, { root: aws, now: atDocumentTime(base, -2000), clockSkewMs: 5000 });
  });
  it('refuses a changed byte anywhere in the signed payload, the protected header or the signature', () => {
    const { protectedHeader, payload, signature } = decodeCoseDocument(base.bytes);
    const now = atDocumentTime(base);
    const flips: Array<[Uint8Array, Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < payload.length; i += 13) {
      const p = new Uint8Array(payload);
      p[i] = (p[i] as number) ^ 0x01;
      flips.push([protectedHeader, p, signature]);
    }
    for (let i = 0; i < signature.length; i++) {
      const s = new Uint8Array(signature);
      s[i] = (s[i] as number) ^ 0x80;
      flips.push([protectedHeader, payload, s]);
    }
    for (const [h, p, s] of flips) {
      expect(() => verifyAttestationDocument(encodeCoseSign1(h, p, s), { root: aws, now })).toThrow(/attestation/);
      try {
        verifyAttestationDocument(encodeCoseSign1(h, p, s), { root: aws, now });
      } catch (e) {
        expect(isCofferError(e, 'ATTESTATION_FORMAT') || isCofferError(e, 'ATTESTATION_INVALID'), String(e)).toBe(true);
      }
    }
  });
  it('refuses a leaf certificate, or a whole chain, swapped in from another document', () => {
    const a = decodeCoseDocument(base.bytes);
    const b = decodeAttestationDocument(beta.bytes);
    const payload = decodeCbor(a.payload) as Map<string, unknown>;
    const swapLeaf = new Map(payload).set('certificate', Buffer.from(b.certificate));
    expectCode(() => verifyAttestationDocument(encodeCoseSign1(a.protectedHeader, encodeCbor(swapLeaf), a.signature), { root: aws, now: atDocumentTime(base) }), 'ATTESTATION_INVALID');
    // a consistent chain from the other document: chain checks pass at its time, the signature does not
    const swapAll = new Map(swapLeaf).set('cabundle', b.cabundle.map((c) => Buffer.from(c)));
    expectCode(() => verifyAttestationDocument(encodeCoseSign1(a.protectedHeader, encodeCbor(swapAll), a.signature), { root: aws, now: atDocumentTime(beta), maxAgeMs: 1e12 }), 'ATTESTATION_INVALID', /signature/);
  });
  it('refuses a chain whose cabundle[0] is not the pinned root, and a dev root that is the AWS root', () => {
    const a = decodeCoseDocument(base.bytes);
    const payload = decodeCbor(a.payload) as Map<string, unknown>;
    const bundle = (payload.get('cabundle') as Buffer[]).slice();
    const dropRoot = new Map(payload).set('cabundle', bundle.slice(1));
    expectCode(() => verifyAttestationDocument(encodeCoseSign1(a.protectedHeader, encodeCbor(dropRoot), a.signature), { root: aws, now: atDocumentTime(base) }), 'ATTESTATION_INVALID', /pinned aws root/);
    const rootTwice = new Map(payload).set('cabundle', [bundle[1], ...bundle.slice(1)]);
    expectCode(() => verifyAttestationDocument(encodeCoseSign1(a.protectedHeader, encodeCbor(rootTwice), a.signature), { root: aws, now: atDocumentTime(base) }), 'ATTESTATION_INVALID', /pinned/);
    expectCode(() => verifyAttestationDocument(base.bytes, { root: { kind: 'dev', rootCertPem: AWS_NITRO_ROOT_G1_PEM }, now: atDocumentTime(base) }), 'INVALID_ARGUMENT');
    expectCode(() => verifyAttestationDocument(base.bytes, { root: { kind: 'dev', rootCertPem: 'not a pem' }, now: atDocumentTime(base) }), 'INVALID_ARGUMENT');
    expectCode(() => verifyAttestationDocument(base.bytes, { root: { kind: 'other' } as unknown as VerifyOptions['root'] }), 'INVALID_ARGUMENT');
  });
  it('checks the nonce when one is expected', () => {
    const doc = decodeAttestationDocument(beta.bytes);
    const nonce = doc.nonce as Uint8Array;
    const now = atDocumentTime(beta);
    verifyAttestationDocument(beta.bytes, { root: aws, now, expectedNonce: nonce });
    const other = new Uint8Array(nonce);
    other[255] = (other[255] as number) ^ 1;
    expectCode(() => verifyAttestationDocument(beta.bytes, { root: aws, now, expectedNonce: other }), 'ATTESTATION_INVALID', /nonce/);
    expectCode(() => verifyAttestationDocument(beta.bytes, { root: aws, now, expectedNonce: nonce.subarray(0, 32) }), 'ATTESTATION_INVALID', /nonce/);
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, now: atDocumentTime(base), expectedNonce: nonce }), 'ATTESTATION_INVALID', /carries none/);
  });
  it('refuses bad options', () => {
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, now: new Date('x') }), 'INVALID_ARGUMENT');
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, maxAgeMs: -1 }), 'INVALID_ARGUMENT');
    expectCode(() => verifyAttestationDocument(base.bytes, { root: aws, clockSkewMs: Number.NaN }), 'INVALID_ARGUMENT');
  });
});
