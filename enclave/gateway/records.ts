// The one door between the gateway and the untrusted storage service's records. Every record the gateway reads
// (a path's node and its binding to a blob, a blob's manifest — size, chunk count, chunk hashes, wrapped key —,
// directory listings, grants, the caller's identity and status) and every record it writes (upload creation and
// commit, mkdir, move, remove, grants) passes through GatewayRecords, so that record MACs (issue 9 point 5: a
// key the KMS releases only to attested enclaves) plug in at one place: `RecordIntegrity` checks each record read
// and may add fields to each write. Nothing else in enclave/gateway talks to the storage service's /v1 JSON API.
//
// Until the MAC library is in, the integrity hooks are `selfConsistency`: it refuses what can be refused without
// a key (a manifest whose chunk count disagrees with its size, a node bound to another blob than its manifest,
// a listing entry outside the directory listed), which is also what every later check starts from.
import { expectedChunkLayout, isBlobIdHex } from '../../src/crypto/index.js';
import { withRetry } from '../../src/client/retry.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { CreateUploadRequest, Manifest, NodeInfo, UploadState, VaultClient } from '../../src/client/vault-client.js';

export type { Manifest, NodeInfo, UploadState };

export interface Grant {
  user: string;
  role: string;
  createdAt: string;
}

/** What the gateway asks the storage service to create: an upload of a new blob sealed inside the enclave. */
export type UploadRequest = CreateUploadRequest;

/**
 * Checks records read from the storage service before the gateway acts on them, and prepares records it writes.
 * Every check throws CofferError INTEGRITY (permanent: the record was altered or forged on the untrusted side)
 * and never returns a partially checked record. Implementations must be safe to call concurrently.
 */
export interface RecordIntegrity {
  /** A node (stat, list entry, a file's node). `path` is the path asked for (null for list entries: checked by the caller). */
  checkNode(node: NodeInfo, path: string | null): Promise<void>;
  /** A file's node with its blob's manifest: the binding path → blob, and size, chunk count, hashes, wrapped key. */
  checkFile(node: NodeInfo, manifest: Manifest): Promise<void>;
  /** The grants set on a node. */
  checkGrants(path: string, grants: Grant[]): Promise<void>;
  /** An upload about to be created; may return the request with integrity fields added. */
  prepareUpload(request: UploadRequest): Promise<UploadRequest>;
  /** A commit just answered by the service (the new binding of `node.path` to the manifest's blob). */
  checkCommitted(node: NodeInfo, manifest: Manifest): Promise<void>;
}

function integrity(message: string): CofferError {
  return new CofferError(ErrorCode.INTEGRITY, message);
}

/** The checks that need no key: a record must at least agree with itself and with what was asked. */
export const selfConsistency: RecordIntegrity = {
  async checkNode(node, path) {
    if (path !== null && node.path !== path) throw integrity(`the storage service answered ${JSON.stringify(node.path)} for ${JSON.stringify(path)}`);
    if (node.type !== 'file' && node.type !== 'dir') throw integrity(`node ${node.path} has an unknown type`);
  },
  async checkFile(node, manifest) {
    if (node.type !== 'file' || node.blobId !== manifest.blobId || !isBlobIdHex(manifest.blobId)) {
      throw integrity(`file ${node.path} is bound to blob ${String(node.blobId)} but its manifest is of ${String(manifest.blobId)}`);
    }
    const count = Number.isSafeInteger(manifest.size) && manifest.size >= 0 ? expectedChunkLayout(manifest.size).chunkCount : -1;
    if (count < 0 || manifest.chunkCount !== count || manifest.state !== 'committed' || node.size !== manifest.size) {
      throw integrity(`manifest of ${node.path} is inconsistent (size ${manifest.size}, ${manifest.chunkCount} chunks, state ${manifest.state})`);
    }
    if (typeof manifest.keyRecord !== 'object' || manifest.keyRecord === null) throw integrity(`manifest of ${node.path} has no key record`);
  },
  async checkGrants() {},
  async prepareUpload(request) {
    return request;
  },
  async checkCommitted(node, manifest) {
    await selfConsistency.checkFile(node, manifest);
  },
};

/** A file as the gateway serves it: its node and the manifest of the blob it is bound to, both checked. */
export interface FileRecord {
  node: NodeInfo;
  manifest: Manifest;
}

/**
 * The storage service's records as one caller sees them (the client carries the caller's token, so the service
 * applies its own permission checks too). Errors: the service's CofferErrors (NOT_FOUND, PERMISSION_DENIED, …,
 * UNAVAILABLE when it cannot be reached) and INTEGRITY from the integrity checks.
 */
export class GatewayRecords {
  constructor(readonly client: VaultClient, private readonly integrity: RecordIntegrity = selfConsistency) {}

  whoami(): Promise<{ user: string; admin: boolean }> {
    return this.client.whoami();
  }

  async stat(path: string): Promise<NodeInfo> {
    const node = await this.client.stat(path);
    await this.integrity.checkNode(node, path);
    return node;
  }

  async file(path: string): Promise<FileRecord> {
    const { node, manifest } = await this.client.manifestByPath(path);
    await this.integrity.checkNode(node, path);
    await this.integrity.checkFile(node, manifest);
    return { node, manifest };
  }

  async list(path: string, options: { after?: string; limit?: number } = {}): Promise<{ items: NodeInfo[]; next: string | null }> {
    const page = await this.client.list(path, options);
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const item of page.items) {
      if (!item.path.startsWith(prefix) || item.path.slice(prefix.length).includes('/')) throw integrity(`listing of ${path} holds ${item.path}`);
      await this.integrity.checkNode(item, null);
    }
    return page;
  }

  async grants(path: string): Promise<Grant[]> {
    const { grants } = await this.client.grants(path);
    await this.integrity.checkGrants(path, grants);
    return grants;
  }

  /** Idempotent on the service (the same request answers the same upload), so retried after transient failures. */
  async createUpload(request: UploadRequest): Promise<UploadState> {
    const prepared = await this.integrity.prepareUpload(request);
    return withRetry(() => this.client.createUpload(prepared));
  }

  putChunk(blobId: string, index: number, sealed: Uint8Array): Promise<unknown> {
    return this.client.putChunk(blobId, index, sealed);
  }

  async commit(blobId: string, chunkCount: number, size: number): Promise<FileRecord> {
    // commit is idempotent (docs/http-api.md): repeated after a lost answer or a storage service restart
    const { node, manifest } = await withRetry(() => this.client.commit(blobId, chunkCount, size));
    await this.integrity.checkCommitted(node, manifest);
    return { node, manifest };
  }

  abort(blobId: string): Promise<unknown> {
    return this.client.abort(blobId);
  }

  /** One whole sealed chunk read into the start of `into`. Its bytes are checked by whoever opens it (AES-GCM, header). */
  getChunkInto(blobId: string, index: number, into: Buffer): Promise<Buffer> {
    return this.client.getChunkInto(blobId, index, into);
  }

  async mkdir(path: string, parents: boolean): Promise<NodeInfo> {
    const node = await this.client.mkdir(path, parents);
    await this.integrity.checkNode(node, path);
    return node;
  }

  async move(from: string, to: string, overwrite: boolean): Promise<NodeInfo> {
    const node = await this.client.move(from, to, overwrite);
    await this.integrity.checkNode(node, to);
    return node;
  }

  remove(path: string, recursive: boolean): Promise<{ removed: number }> {
    return this.client.remove(path, recursive);
  }

  putGrant(path: string, user: string, role: string): Promise<unknown> {
    return this.client.putGrant(path, user, role);
  }

  deleteGrant(path: string, user: string): Promise<unknown> {
    return this.client.deleteGrant(path, user);
  }

  close(): void {
    this.client.close();
  }
}
