// Public entry of src/crypto: chunk format v1, the streaming chunker, blob ids and the key-file envelope.
// The fixed-nonce helpers for test vectors are deliberately not exported here.
export {
  BLOB_ID_SIZE, CHUNK_SIZE, DEK_SIZE, FLAG_FINAL, HEADER_SIZE, MAGIC, MAX_SEALED_SIZE, MAX_U32, NONCE_SIZE,
  TAG_SIZE, VERSION, checkHeaderFields, decodeChunkHeader, encodeChunkHeader, encodeChunkHeaderInto,
  expectedChunkLayout, sealedSize,
} from './chunk-header.js';
export type { ChunkHeader, ChunkLayout } from './chunk-header.js';
export { checkDek, openChunk, openChunkInto, sealChunk, sealChunkInto } from './chunk.js';
export type { OpenExpectation, SealParams } from './chunk.js';
export { openStream, sealStream } from './chunker.js';
export { sealReader, type ReadAt } from './seal-reader.js';
export type { BlobManifest, OpenStreamOptions, SealStreamOptions, SealStreamParams, SealedChunk } from './chunker.js';
export { blobIdFromHex, blobIdToHex, isBlobIdHex, newBlobId } from './blob-id.js';
export {
  KEK_ID_DOMAIN, KEK_SIZE, KEY_RECORD_SCHEME, KEY_RECORD_VERSION, generateKeyFile, kekIdOf, dataKeyUnwrapper, dataKeyWrapper, keyRecordAad,
  newDataKey, parseKeyRecord, readKeyFile, unwrapDataKey, wrapDataKey,
} from './keyfile.js';
export type { KeyRecord } from './keyfile.js';
export { dataKeyObject, type DataKey } from './data-key.js';
export { uploadBindingTag, verifyUploadBindingTag, UPLOAD_BINDING_PREFIX, type UploadBinding } from './upload-binding.js';
