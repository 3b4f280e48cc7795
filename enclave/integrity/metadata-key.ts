// The enclave's metadata MAC key (docs/format.md "Metadata MAC v1", docs/kms.md "Key custody"): a 32-byte KMS data
// key only attested enclaves can know, under the encryption context exactly {"coffer:purpose": "metadata-mac"},
// kept wrapped in the untrusted store (custody: enclave-data-key.ts). A deleted or replaced wrapped key only makes
// every existing MAC fail (refused, never obeyed).
import { openEnclaveDataKey, type EnclaveDataKeyOptions } from './enclave-data-key.js';
import { MetadataMacKey } from './mac.js';

export type { Recipient, WrappedKeySlot } from './enclave-data-key.js';

export const METADATA_KEY_CONTEXT: Readonly<Record<string, string>> = Object.freeze({ 'coffer:purpose': 'metadata-mac' });

export type OpenMetadataKeyOptions = EnclaveDataKeyOptions;

/**
 * Opens the metadata key, generating and storing it on first use.
 * @throws CofferError KMS_ACCESS_DENIED (measurement not admitted), KEY_INVALID (a stored key that does not open),
 *   CMS, KMS.
 */
export function openMetadataKey(o: OpenMetadataKeyOptions): Promise<MetadataMacKey> {
  return openEnclaveDataKey(o, { context: METADATA_KEY_CONTEXT, what: 'metadata key', make: (bytes) => new MetadataMacKey(bytes) });
}
