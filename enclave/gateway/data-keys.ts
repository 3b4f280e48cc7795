// Data keys inside the enclave: new ones from KMS GenerateDataKey and existing ones from KMS Decrypt, both with a
// Recipient (the enclave's attestation document, whose public_key is the enclave's RSA key), so the KMS answers
// only with CiphertextForRecipient that the enclave opens with the RSA private key it never lets out.
// The documents sent to the KMS are reused for at most DOCUMENT_REUSE_MS (the KMS refuses documents older than
// its maximum age, 5 minutes by default); opened data keys are kept for at most DEK_CACHE_MS so that the Range
// requests of one reader do not cost a KMS round trip each, and are zeroed when dropped.
import type { KeyService } from '../../src/kms/index.js';
import type { KeyRecord } from '../../src/metadata/types.js';
import type { DataKeyProvider } from '../../src/client/data-keys.js';
import { CofferError, ErrorCode, isCofferError } from '../../src/errors.js';
import { attest, type EnclaveIdentity } from './identity.js';

const DOCUMENT_REUSE_MS = 60_000;
const DEK_CACHE_MS = 60_000;
const DEK_CACHE_MAX = 1024;

interface CachedKey {
  dek: Uint8Array;
  until: number;
}

export class EnclaveDataKeys implements DataKeyProvider {
  private document: { bytes: Uint8Array; until: number } | null = null;
  private readonly cache = new Map<string, CachedKey>();

  constructor(private readonly identity: EnclaveIdentity, private readonly kms: KeyService, private readonly now: () => number = Date.now) {}

  private async recipientDocument(): Promise<Uint8Array> {
    const t = this.now();
    if (this.document && this.document.until > t) return this.document.bytes;
    const bytes = await attest(this.identity);
    this.document = { bytes, until: t + DOCUMENT_REUSE_MS };
    return bytes;
  }

  /** A new DEK for a new blob (the caller zeroes it). Throws KMS errors mapped as below. */
  async newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }> {
    const out = await kmsCall(async () => this.kms.generateDataKeyForRecipient(blobIdHex, await this.recipientDocument(), this.identity.rsaPrivateKey));
    return { dek: out.plaintextKey, keyRecord: { ...out.keyRecord } };
  }

  /**
   * The DEK of an existing blob: a copy the caller zeroes when done. Only KMS-mode records can be opened here;
   * a key-file blob is KEY_INVALID (it stays client-side).
   */
  async openDataKey(keyRecord: KeyRecord, blobIdHex: string): Promise<Uint8Array> {
    if (keyRecord.scheme !== 'kms') {
      throw new CofferError(ErrorCode.KEY_INVALID, `this file's key is held in a key file (scheme "${keyRecord.scheme}"), not by the KMS: read it with coffer get --key-file`);
    }
    const cacheKey = `${blobIdHex}\0${JSON.stringify(keyRecord)}`;
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > this.now()) return new Uint8Array(hit.dek);
    const dek = await kmsCall(async () => this.kms.decryptForRecipient(keyRecord, blobIdHex, await this.recipientDocument(), this.identity.rsaPrivateKey));
    this.remember(cacheKey, dek);
    return new Uint8Array(dek);
  }

  private remember(key: string, dek: Uint8Array): void {
    const t = this.now();
    for (const [k, v] of this.cache) {
      if (v.until <= t || this.cache.size >= DEK_CACHE_MAX) {
        v.dek.fill(0);
        this.cache.delete(k);
      } else break;
    }
    this.cache.set(key, { dek: new Uint8Array(dek), until: t + DEK_CACHE_MS });
  }

  /**
   * Checks the KMS releases keys to this enclave: a GenerateDataKey, then a Decrypt of its record, both with
   * Recipient (a key policy may let this principal generate keys as a sealer while refusing it Decrypt: only the
   * Decrypt proves the policy admits this measurement). Throws KMS_ACCESS_DENIED, UNAVAILABLE, KEY_INVALID.
   */
  async probe(): Promise<void> {
    const blobIdHex = '00'.repeat(16);
    const { dek, keyRecord } = await this.newDataKey(blobIdHex);
    try {
      const again = await kmsCall(async () => this.kms.decryptForRecipient(keyRecord, blobIdHex, await this.recipientDocument(), this.identity.rsaPrivateKey));
      const same = Buffer.from(again).equals(Buffer.from(dek));
      again.fill(0);
      if (!same) throw new CofferError(ErrorCode.KEY_INVALID, 'the KMS decrypted a data key to other bytes than it generated');
    } finally {
      dek.fill(0);
    }
  }

  close(): void {
    for (const v of this.cache.values()) v.dek.fill(0);
    this.cache.clear();
    this.kms.close();
  }
}

/**
 * KMS failures as the gateway reports them: a refusal stays KMS_ACCESS_DENIED (403); an unreachable or failing
 * KMS is UNAVAILABLE (503, Retry-After) so clients try again, and nothing has been written by then.
 */
async function kmsCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isCofferError(e, ErrorCode.KMS) && e.retryable) {
      throw new CofferError(ErrorCode.UNAVAILABLE, 'the KMS cannot be reached; try again', { cause: e, retryable: true });
    }
    throw e;
  }
}
