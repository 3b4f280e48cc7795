// The key that seals S3 access-key secrets (access-keys.ts): a 32-byte KMS data key only attested enclaves can
// know, under the encryption context exactly {"coffer:purpose": "s3-access-keys"}, kept wrapped in an untrusted
// slot (a file in the channel directory) — the same custody as the metadata MAC key
// (enclave/integrity/enclave-data-key.ts). A deleted or replaced wrapped key only makes every stored access key
// fail to open (refused as unknown, never obeyed).
import { openEnclaveDataKey, type EnclaveDataKeyOptions } from '../integrity/enclave-data-key.js';
import { AesGcmSealer } from './access-keys.js';

export const S3_SEALING_KEY_CONTEXT: Readonly<Record<string, string>> = Object.freeze({ 'coffer:purpose': 's3-access-keys' });

/** The file in the channel directory holding the wrapped key. */
export const S3_SEALING_KEY_FILE = 's3-access-keys.key.wrapped';

export type OpenSealingKeyOptions = EnclaveDataKeyOptions;

/**
 * Opens the access-key sealing key, generating and storing it on first use (first writer wins).
 * @throws CofferError KMS_ACCESS_DENIED (measurement not admitted), KEY_INVALID (a stored key that does not open), KMS.
 */
export function openS3SealingKey(o: OpenSealingKeyOptions): Promise<AesGcmSealer> {
  // a copy the sealer keeps: the opened bytes are zeroed afterwards
  return openEnclaveDataKey(o, { context: S3_SEALING_KEY_CONTEXT, what: 'S3 sealing key', make: (bytes) => new AesGcmSealer(Buffer.from(bytes)) });
}
