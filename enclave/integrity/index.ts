// Public entry of the enclave's metadata integrity: the canonical record encoding, HMAC-SHA-256 MACs under the
// metadata key, the key's KMS custody, and the verifier the gateway routes every record it reads through.
// Format: docs/format.md "Metadata MAC v1"; design: docs/metadata.md "Integrity".
export { encodeMessage, DOMAIN, FORMAT_VERSION, type Field } from './encoding.js';
export { KIND, type RecordKind, type NodeFacts, type BlobFacts, type GrantFacts, type UserFacts } from './records.js';
export { MetadataMacKey, MAC_PREFIX } from './mac.js';
export { openMetadataKey, METADATA_KEY_CONTEXT, type WrappedKeySlot, type Recipient, type OpenMetadataKeyOptions } from './metadata-key.js';
export { MacIntegrity, nodeFacts, blobFacts, type IntegrityRefusal } from './verifier.js';
export { endorseClientFile } from './endorse.js';
