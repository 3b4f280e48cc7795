// Differential checks against an independent implementation (STYLE.md rule 9): the OpenSSL command line
// verifies the ES384 signature over the COSE Sig_structure and the certificate chain of the same documents,
// and must agree with verifyAttestationDocument on the real AWS documents, simulated ones, and mutations.
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { AsnConvert } from '@peculiar/asn1-schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedNsm } from '../../enclave/attestation/index.js';
import { isCofferError } from '../errors.js';
import { decodeCoseDocument, encodeCoseSign1, sigStructure } from './codec.js';
import { verifyAttestationDocument, type TrustRoot } from './index.js';
import { atDocumentTime, nitroFixtures } from './nitro-fixtures.test-util.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-diff-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** r‖s (IEEE P1363) → DER ECDSA-Sig-Value, serialised by @peculiar/asn1-ecc (INTEGERs must be positive). */
function p1363ToDer(sig: Uint8Array): Uint8Array {
  const asInteger = (b: Uint8Array): ArrayBuffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return new Uint8Array((v[0] as number) & 0x80 ? [0, ...v] : v).buffer;
  };
  const value = new ECDSASigValue();
  value.r = asInteger(sig.subarray(0, 48));
  value.s = asInteger(sig.subarray(48));
  return new Uint8Array(AsnConvert.serialize(value));
}

let n = 0;
/** OpenSSL's verdict on the ES384 signature of (possibly mutated) document parts. */
async function opensslSignatureOk(leafDer: Uint8Array, protectedHeader: Uint8Array, payload: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const id = n++;
  const pub = join(work, `pub${id}.pem`);
  await writeFile(pub, new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(join(work, `data${id}`), sigStructure(protectedHeader, payload));
  await writeFile(join(work, `sig${id}`), p1363ToDer(signature));
  const r = spawnSync('openssl', ['dgst', '-sha384', '-verify', pub, '-signature', join(work, `sig${id}`), join(work, `data${id}`)], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('Verified OK');
}

/** OpenSSL's verdict on leaf ← cabundle ← cabundle[0] at a given time, the root given as the only trust anchor. */
async function opensslChainOk(leafDer: Uint8Array, cabundle: Uint8Array[], at: Date): Promise<boolean> {
  const id = n++;
  const pem = (d: Uint8Array): string => new X509Certificate(d).toString();
  await writeFile(join(work, `root${id}.pem`), pem(cabundle[0] as Uint8Array));
  await writeFile(join(work, `inter${id}.pem`), cabundle.slice(1).map(pem).join(''));
  await writeFile(join(work, `leaf${id}.pem`), pem(leafDer));
  // not -x509_strict: Nitro leaves carry no Authority Key Identifier, which strict mode requires
  const args = ['verify', '-attime', String(Math.floor(at.getTime() / 1000)), '-CAfile', join(work, `root${id}.pem`), '-untrusted', join(work, `inter${id}.pem`), join(work, `leaf${id}.pem`)];
  return spawnSync('openssl', args, { encoding: 'utf8' }).status === 0;
}

function oursOk(bytes: Uint8Array, root: TrustRoot, now: Date, maxAgeMs?: number): boolean {
  try {
    verifyAttestationDocument(bytes, { root, now, ...(maxAgeMs === undefined ? {} : { maxAgeMs }) });
    return true;
  } catch (e) {
    expect(isCofferError(e), String(e)).toBe(true);
    return false;
  }
}

describe.skipIf(!hasOpenssl)('differential: OpenSSL CLI vs verifyAttestationDocument', () => {
  it('agrees on the real documents, their chains at and after their time, and single-byte payload flips', async () => {
    for (const f of nitroFixtures) {
      const d = decodeCoseDocument(f.bytes);
      const now = atDocumentTime(f);
      expect(await opensslSignatureOk(d.document.certificate, d.protectedHeader, d.payload, d.signature)).toBe(true);
      expect(oursOk(f.bytes, { kind: 'aws' }, now)).toBe(true);
      expect(await opensslChainOk(d.document.certificate, d.document.cabundle, now)).toBe(true);
      const expired = atDocumentTime(f, 4 * 3600_000);
      expect(await opensslChainOk(d.document.certificate, d.document.cabundle, expired)).toBe(false);
      expect(oursOk(f.bytes, { kind: 'aws' }, expired, 1e12)).toBe(false);

      for (const pos of [5, Math.floor(d.payload.length / 2), d.payload.length - 1]) {
        const p = new Uint8Array(d.payload);
        p[pos] = (p[pos] as number) ^ 0x04;
        expect(await opensslSignatureOk(d.document.certificate, d.protectedHeader, p, d.signature)).toBe(false);
        expect(oursOk(encodeCoseSign1(d.protectedHeader, p, d.signature), { kind: 'aws' }, now)).toBe(false);
      }
      const s = new Uint8Array(d.signature);
      s[10] = (s[10] as number) ^ 0x01;
      expect(await opensslSignatureOk(d.document.certificate, d.protectedHeader, d.payload, s)).toBe(false);
      expect(oursOk(encodeCoseSign1(d.protectedHeader, d.payload, s), { kind: 'aws' }, now)).toBe(false);
    }
  });

  it('agrees on documents from the simulated NSM (signature and dev chain)', async () => {
    const dataDir = join(work, 'data');
    const nsm = await SimulatedNsm.create({ dataDir, pcrs: { 0: '12'.repeat(48) } });
    for (let i = 0; i < 3; i++) {
      const bytes = await nsm.attest({ nonce: new Uint8Array([i]) });
      const d = decodeCoseDocument(bytes);
      expect(await opensslSignatureOk(d.document.certificate, d.protectedHeader, d.payload, d.signature)).toBe(true);
      expect(await opensslChainOk(d.document.certificate, d.document.cabundle, new Date())).toBe(true);
      expect(oursOk(bytes, nsm.trustRoot, new Date())).toBe(true);
    }
  });

  it('the DER conversion used here round-trips through OpenSSL signatures', async () => {
    // sanity check of the test's own helper: openssl signs (DER), Node verifies the P1363 form of it
    const key = join(work, 'k.pem');
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', key]);
    await writeFile(join(work, 'm'), 'message');
    const der = execFileSync('openssl', ['dgst', '-sha384', '-sign', key, join(work, 'm')]);
    const sig = AsnConvert.parse(der, ECDSASigValue);
    const fixed = (b: ArrayBuffer): Uint8Array => {
      const u = new Uint8Array(b);
      const v = u.length > 48 ? u.subarray(u.length - 48) : u;
      return new Uint8Array([...new Uint8Array(48 - v.length), ...v]);
    };
    const p1363 = new Uint8Array([...fixed(sig.r), ...fixed(sig.s)]);
    expect(Buffer.from(p1363ToDer(p1363)).equals(der)).toBe(true);
  });
});
