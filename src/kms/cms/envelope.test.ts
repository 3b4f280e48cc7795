// CMS interoperability with the real openssl CLI (an independent implementation): envelopes we build open
// with `openssl cms -decrypt`, and envelopes openssl builds (OAEP-SHA-256, AES-256-CBC, streamed BER) open here.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCofferError } from '../../errors.js';
import { buildEnvelope, openEnvelope, rsaPublicKey } from './index.js';

let dir: string;
let privateKey: KeyObject;
let spki: Buffer;
const openssl = (...args: string[]): Buffer => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-cms-'));
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  privateKey = pair.privateKey;
  spki = pair.publicKey.export({ format: 'der', type: 'spki' });
  writeFileSync(join(dir, 'key.pem'), pair.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  // a certificate for the same key: openssl puts subjectKeyIdentifier = SHA-1(public key bits) into it
  openssl('req', '-x509', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=coffer-test', '-days', '1', '-out', join(dir, 'cert.pem'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CMS EnvelopedData', () => {
  it('an envelope built by Coffer opens with openssl cms -decrypt (key only, and -recip by certificate)', () => {
    const secret = randomBytes(32);
    writeFileSync(join(dir, 'env.der'), buildEnvelope(secret, spki));
    const byKey = openssl('cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'env.der'), '-inkey', join(dir, 'key.pem'), '-binary');
    expect(byKey.equals(secret)).toBe(true);
    const byCert = openssl('cms', '-decrypt', '-inform', 'DER', '-in', join(dir, 'env.der'), '-recip', join(dir, 'cert.pem'), '-inkey', join(dir, 'key.pem'), '-binary');
    expect(byCert.equals(secret)).toBe(true);
    const printed = openssl('cms', '-cmsout', '-print', '-inform', 'DER', '-in', join(dir, 'env.der')).toString();
    expect(printed).toMatch(/rsaesOaep/);
    expect(printed).toMatch(/aes-256-cbc/);
    expect(openEnvelope(readFileSync(join(dir, 'env.der')), privateKey).equals(secret)).toBe(true);
  });

  for (const [name, extra] of [['issuerAndSerialNumber', []], ['subjectKeyIdentifier', ['-keyid']]] as const) {
    it(`an envelope streamed by openssl (BER, indefinite lengths, ${name}) opens with Coffer`, () => {
      const secret = randomBytes(1000); // several CBC blocks, chunked by -stream
      writeFileSync(join(dir, 'in.bin'), secret);
      openssl('cms', '-encrypt', '-binary', '-in', join(dir, 'in.bin'), '-recip', join(dir, 'cert.pem'), ...extra, '-keyopt', 'rsa_padding_mode:oaep',
        '-keyopt', 'rsa_oaep_md:sha256', '-aes-256-cbc', '-stream', '-indef', '-outform', 'DER', '-out', join(dir, 'ossl.der'));
      const der = readFileSync(join(dir, 'ossl.der'));
      expect(der[1]).toBe(0x80); // really indefinite-length BER
      expect(openEnvelope(der, privateKey).equals(secret)).toBe(true);
    });
  }

  it('refuses RSAES-OAEP with SHA-1 (parameters other than the ones Coffer writes are parsed, not assumed)', () => {
    writeFileSync(join(dir, 'in.bin'), randomBytes(32));
    openssl('cms', '-encrypt', '-binary', '-in', join(dir, 'in.bin'), '-recip', join(dir, 'cert.pem'), '-keyid', '-keyopt', 'rsa_padding_mode:oaep',
      '-keyopt', 'rsa_oaep_md:sha1', '-aes-256-cbc', '-outform', 'DER', '-out', join(dir, 'sha1.der'));
    expect(() => openEnvelope(readFileSync(join(dir, 'sha1.der')), privateKey)).toThrow(/no RSAES-OAEP-SHA-256 recipient info/);
  });

  it('refuses PKCS#1 v1.5 key transport, other keys, and a modified envelope', () => {
    const secret = randomBytes(32);
    writeFileSync(join(dir, 'in.bin'), secret);
    openssl('cms', '-encrypt', '-binary', '-in', join(dir, 'in.bin'), '-recip', join(dir, 'cert.pem'), '-aes-256-cbc', '-outform', 'DER', '-out', join(dir, 'v15.der'));
    expect(() => openEnvelope(readFileSync(join(dir, 'v15.der')), privateKey)).toThrow(/RSAES-OAEP-SHA-256/);

    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const env = buildEnvelope(secret, spki);
    expect(() => openEnvelope(env, other.privateKey)).toThrow(/no RSAES-OAEP-SHA-256 recipient info for this key/);
    const bad = Buffer.from(env);
    bad[bad.length - 20] = (bad[bad.length - 20] ?? 0) ^ 1;
    let thrown: unknown;
    try {
      const out = openEnvelope(bad, privateKey);
      thrown = out.equals(secret) ? null : 'changed';
    } catch (e) {
      thrown = e;
    }
    expect(thrown === 'changed' || isCofferError(thrown, 'CMS')).toBe(true); // CBC is unauthenticated: garbage or a padding error, never the secret
    expect(() => openEnvelope(Buffer.from('not cms'), privateKey)).toThrow(/not a CMS EnvelopedData/);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => buildEnvelope(secret, small.publicKey.export({ format: 'der', type: 'spki' }))).toThrow(/2048/);
  });

  it('keeps a recipient key once it passed its checks, and only the exact same bytes find it', () => {
    // many envelopes to one key (the KMS: every data key of an enclave): each opens, with openssl too
    for (let i = 0; i < 3; i++) {
      const secret = randomBytes(32);
      const env = buildEnvelope(secret, spki);
      expect(openEnvelope(env, privateKey).equals(secret)).toBe(true);
      writeFileSync(join(dir, 'kept.der'), env);
      expect(openssl('cms', '-decrypt', '-binary', '-inform', 'DER', '-in', join(dir, 'kept.der'), '-inkey', join(dir, 'key.pem')).equals(secret)).toBe(true);
    }
    // a refused key is refused every time (nothing of it is kept), before and after a good key was kept
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'spki' });
    for (let i = 0; i < 2; i++) expect(() => buildEnvelope(randomBytes(32), small)).toThrow(/2048/);
    expect(() => rsaPublicKey(small)).toThrow(/2048/);
    // a key one byte away from the kept one is parsed anew (and fails), never taken for it
    const edited = Buffer.from(spki);
    edited[edited.length - 1] = (edited[edited.length - 1] ?? 0) ^ 0xff;
    let envelope: Buffer | null = null;
    try {
      envelope = buildEnvelope(randomBytes(32), edited);
    } catch {
      envelope = null;
    }
    if (envelope) expect(() => openEnvelope(envelope as Buffer, privateKey)).toThrow();
    // another key pair's envelope names its own key: ours does not open it (the key id is not mixed up by the cache)
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const otherEnv = buildEnvelope(randomBytes(32), other.publicKey.export({ format: 'der', type: 'spki' }));
    expect(() => openEnvelope(otherEnv, privateKey)).toThrow(/no RSAES-OAEP-SHA-256 recipient info for this key/);
    expect(openEnvelope(otherEnv, other.privateKey).length).toBe(32);
  });
});
