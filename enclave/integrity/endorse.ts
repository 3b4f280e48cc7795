// Endorsing a file a client committed itself (`coffer put` in KMS mode: sealed on the client, committed at the
// storage service, so no enclave MAC). The enclave endorses it — writes its node and blob MACs — only after it has
//   1. the data key from the KMS (attested Recipient; the caller's DataKeyProvider),
//   2. checked the uploader's binding tag: keyed by that data key, it binds this blob to this path, owner and size,
//      so the host cannot have bound the blob elsewhere (docs/metadata.md "Record MACs"),
//   3. opened every chunk (AES-GCM with blob id, index, generation, FINAL) and matched every chunk's SHA-256.
// Anything else is refused (INTEGRITY, reported) and nothing is written.
import { createHash } from 'node:crypto';
import type { DataKeyProvider } from '../../src/client/data-keys.js';
import type { VaultClient } from '../../src/client/vault-client.js';
import { blobIdFromHex, openChunk, verifyUploadBindingTag } from '../../src/crypto/index.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { selfConsistency, type FileRecord } from '../gateway/records.js';
import type { MacIntegrity } from './verifier.js';

/**
 * Endorses the file at `path` and returns its records with their new MACs.
 * @throws CofferError INTEGRITY (no or wrong binding tag, a chunk that does not open or match), the KMS's and the
 *   storage service's errors, CONFLICT if the node changed meanwhile.
 */
export async function endorseClientFile(client: VaultClient, integrity: MacIntegrity, keys: DataKeyProvider, path: string): Promise<FileRecord> {
  const { node, manifest } = await client.manifestByPath(path);
  await selfConsistency.checkNode(node, path);
  await selfConsistency.checkFile(node, manifest);
  const dek = await keys.openDataKey(manifest.keyRecord, manifest.blobId);
  try {
    const bound = { blobId: manifest.blobId, path: node.path, owner: node.owner, size: manifest.size };
    if (manifest.owner !== node.owner || !verifyUploadBindingTag(dek, bound, manifest.binding)) {
      integrity.reportRefusal({ kind: 'node', target: path, reason: 'no uploader binding tag for this blob at this path and owner' });
    }
    for (let i = 0; i < manifest.chunkCount; i++) {
      const sealed = await client.getChunk(manifest.blobId, i);
      if (createHash('sha256').update(sealed).digest('hex') !== manifest.chunks[i]?.sha256) {
        integrity.reportRefusal({ kind: 'blob', target: manifest.blobId, reason: `chunk ${i} does not match its recorded SHA-256` });
      }
      const expect = { blobId: blobIdFromHex(manifest.blobId), index: i, keyGeneration: manifest.keyGeneration, final: i === manifest.chunkCount - 1 };
      await openChunk(dek, sealed, expect).catch((e: unknown) =>
        integrity.reportRefusal({ kind: 'blob', target: manifest.blobId, reason: `chunk ${i} does not open: ${e instanceof CofferError ? e.code : String(e)}` }));
    }
    const macs = integrity.commitMacs(node, manifest, dek);
    const verified = { node: { ...node, mac: macs.node }, manifest: { ...manifest, mac: macs.blob } };
    // Storing the MACs needs the blob's owner (or write on the node); a reader with a read grant only cannot store
    // them, but what was verified above is as strong as a MAC check: it is served, and re-verified next time.
    try {
      await client.setBlobMac(manifest.blobId, macs.blob);
    } catch (e) {
      if (e instanceof CofferError && e.code === ErrorCode.PERMISSION_DENIED) return verified;
      throw e;
    }
    let endorsedNode;
    try {
      endorsedNode = await client.setNodeMac(path, node.version, macs.node);
    } catch (e) {
      if (e instanceof CofferError && e.code === ErrorCode.PERMISSION_DENIED) return verified;
      throw e;
    }
    const file = { node: endorsedNode, manifest: verified.manifest };
    if (endorsedNode.blobId !== manifest.blobId) throw new CofferError(ErrorCode.CONFLICT, `${path} changed while it was endorsed; try again`);
    return file;
  } finally {
    dek.fill(0);
  }
}
