// Shared contract suite for KeyService implementations (STYLE.md rule 2). Each implementation's test calls
// keyServiceContract() with a setup that provides: a service whose key releases DEKs only to the attested
// measurement, a valid attestation document for an RSA key, one for a disallowed measurement, and a second
// KMS key the service may rewrap to.
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isCofferError } from '../errors.js';
import type { KeyService } from './key-service.js';

export interface KeyServiceFixture {
  /** Client-side service (may take plaintext DEKs for new data, nothing else). */
  sealer: KeyService;
  /** The key administrator's service (may rewrap to a key with the same attestation rule). */
  admin: KeyService;
  /** Enclave-side service (gets DEKs only through a Recipient). */
  enclave: KeyService;
  allowedDocument: Uint8Array;
  deniedDocument: Uint8Array;
  privateKey: KeyObject;
  /** A key with the same policy as the service's key: the only kind rewrap may move a data key to. */
  rewrapTarget: string;
  /** A key with another policy (e.g. one the administrator fully controls): rewrap to it must be refused. */
  foreignKey: string;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return isCofferError(e) ? e.code : `not a CofferError: ${String(e)}`;
  }
  return 'no error';
}

export function keyServiceContract(name: string, fixture: () => KeyServiceFixture): void {
  describe(`KeyService contract: ${name}`, () => {
    const id = (): string => randomBytes(16).toString('hex');

    it('generateDataKey → decryptForRecipient returns the same 32 bytes', async () => {
      const f = fixture();
      const blob = id();
      const g = await f.sealer.generateDataKey(blob);
      expect(g.plaintextKey).toHaveLength(32);
      expect(g.keyRecord.encryptionContext).toEqual({ 'coffer:blob': blob });
      const k = await f.enclave.decryptForRecipient(g.keyRecord, blob, f.allowedDocument, f.privateKey);
      expect(Buffer.from(k).equals(Buffer.from(g.plaintextKey))).toBe(true);
    });

    it('generateDataKeyForRecipient gives the enclave a key it can decrypt again later', async () => {
      const f = fixture();
      const blob = id();
      const g = await f.enclave.generateDataKeyForRecipient(blob, f.allowedDocument, f.privateKey);
      const k = await f.enclave.decryptForRecipient(g.keyRecord, blob, f.allowedDocument, f.privateKey);
      expect(Buffer.from(k).equals(Buffer.from(g.plaintextKey))).toBe(true);
    });

    it('refuses a disallowed measurement, another blob, a forged context and a malformed blob id', async () => {
      const f = fixture();
      const blob = id();
      const { keyRecord } = await f.sealer.generateDataKey(blob);
      expect(await codeOf(f.enclave.decryptForRecipient(keyRecord, blob, f.deniedDocument, f.privateKey))).toBe('KMS_ACCESS_DENIED');
      expect(await codeOf(f.enclave.decryptForRecipient(keyRecord, id(), f.allowedDocument, f.privateKey))).toBe('KEY_INVALID');
      const other = id();
      const forged = { ...keyRecord, encryptionContext: { 'coffer:blob': other } };
      expect(await codeOf(f.enclave.decryptForRecipient(forged, other, f.allowedDocument, f.privateKey))).toBe('KEY_INVALID');
      expect(await codeOf(f.sealer.generateDataKey('XYZ'))).toBe('INVALID_ARGUMENT');
    });

    it('rewrap keeps the DEK and the context, under the new key', async () => {
      const f = fixture();
      const blob = id();
      const g = await f.sealer.generateDataKey(blob);
      expect(await codeOf(f.sealer.rewrap(g.keyRecord, f.rewrapTarget))).toBe('KMS_ACCESS_DENIED');
      const moved = await f.admin.rewrap(g.keyRecord, f.rewrapTarget);
      expect(moved.encryptionContext).toEqual(g.keyRecord.encryptionContext);
      expect(moved.ciphertextBlob).not.toBe(g.keyRecord.ciphertextBlob);
      const k = await f.enclave.decryptForRecipient(moved, blob, f.allowedDocument, f.privateKey);
      expect(Buffer.from(k).equals(Buffer.from(g.plaintextKey))).toBe(true);
    });

    it('rewrap refuses to move a data key under a key with another policy', async () => {
      const f = fixture();
      const blob = id();
      const g = await f.sealer.generateDataKey(blob);
      expect(await codeOf(f.admin.rewrap(g.keyRecord, f.foreignKey))).toBe('KMS_ACCESS_DENIED');
    });
  });
}
