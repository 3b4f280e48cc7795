// The KMS's cache of lately verified attestation documents (src/kms/server/recipient.ts): a hit may skip only the
// signature and chain checks, never the root the document was verified under, nor its age.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevRoot, SimulatedNsm } from '../../../enclave/attestation/index.js';
import type { TrustRoot } from '../../attestation/index.js';
import type { ServerSettings } from '../server/context.js';
import { verifyRecipient } from '../server/recipient.js';

let dir: string;
let otherDir: string;
let root: TrustRoot;
let otherRoot: TrustRoot;
let doc: Buffer;
let t = Date.now();

const settings = (r: TrustRoot): ServerSettings => ({ attestationRoot: r, attestationMaxAgeMs: 5 * 60_000, now: () => new Date(t) } as ServerSettings);
const recipient = (bytes: Buffer): { KeyEncryptionAlgorithm: string; AttestationDocument: Buffer } => ({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: bytes });
const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { type: string }).type;
  }
  return 'accepted';
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-kms-cache-'));
  otherDir = mkdtempSync(join(tmpdir(), 'coffer-kms-cache-other-'));
  root = (await ensureDevRoot(dir)).trustRoot;
  otherRoot = (await ensureDevRoot(otherDir)).trustRoot;
  const spki = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' });
  doc = Buffer.from(await (await SimulatedNsm.create({ dataDir: dir, pcrs: { 0: 'a1'.repeat(48) }, clock: () => new Date(t) })).attest({ publicKey: spki }));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(otherDir, { recursive: true, force: true });
});

describe('verified attestation documents', () => {
  it('a document accepted under one root is still refused under another, and when too old', () => {
    expect(verifyRecipient(settings(root), recipient(doc)).document.pcrs.get(0)).toBeDefined();
    expect(verifyRecipient(settings(root), recipient(doc)).publicKey.length).toBeGreaterThan(0); // a hit
    expect(refusal(() => verifyRecipient(settings(otherRoot), recipient(doc)))).toBe('AccessDeniedException');
    expect(verifyRecipient(settings(root), recipient(doc)).publicKey.length).toBeGreaterThan(0);
    t += 5 * 60_000 + 60_000 + 1_000; // past max age + clock skew
    expect(refusal(() => verifyRecipient(settings(root), recipient(doc)))).toBe('AccessDeniedException');
    t -= 5 * 60_000 + 60_000 + 1_000;
  });

  it('one changed byte is verified afresh and refused', () => {
    verifyRecipient(settings(root), recipient(doc));
    const bad = Buffer.from(doc);
    bad[bad.length - 10] = (bad[bad.length - 10] as number) ^ 1;
    expect(refusal(() => verifyRecipient(settings(root), recipient(bad)))).toMatch(/AccessDeniedException|ValidationException/);
  });
});
