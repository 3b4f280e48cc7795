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
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { CreateUploadRequest, Manifest, NodeInfo, UploadState, VaultClient } from '../../src/client/vault-client.js';
import { requireVerifiedRole, type AccessActor, type Role } from './access.js';

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
  /** The data key just opened for a checked file, before any chunk is opened with it (record MACs commit to it). */
  checkDataKey?(file: FileRecord, dek: Uint8Array): Promise<void>;
  // ---- MACs of what the gateway writes (absent: the gateway attaches none; docs/metadata.md "Record MACs") ----
  /** The MACs of a commit the gateway made itself with `dek`. */
  commitMacs?(node: NodeInfo, manifest: Manifest, dek: Uint8Array): { node: string; blob: string };
  /** The MAC of a node the gateway created (a directory) as the service answered it. */
  nodeMac?(node: NodeInfo): string;
  /** The MAC of `node` at its new path, if its MAC verifies at `oldPath` (a move); throws INTEGRITY otherwise. */
  movedNodeMac?(node: NodeInfo, oldPath: string): string;
  grantMac?(path: string, user: string, role: string): string;
  /** The MAC of a grant moved with its node from `oldPath`, if its MAC verifies there; throws INTEGRITY otherwise. */
  movedGrantMac?(grant: Grant & { mac?: string }, oldPath: string, newPath: string): string;
  /** A file with no MAC at all (committed by a client, `coffer put` in KMS mode): verified and endorsed, or INTEGRITY. */
  endorseFile?(client: VaultClient, path: string): Promise<FileRecord>;
  /** A user's status record as the service keeps it: throws INTEGRITY when its MAC is there and wrong (docs/metadata.md "Users' status"). */
  checkUser?(status: UserStatus): void;
  /** The MAC of a user's status the gateway sets (an admin's disable / enable). */
  userMac?(user: string, disabled: boolean): string;
}

/** A user's status as the storage service keeps it (GET /v1/integrity/user). */
export interface UserStatus {
  user: string;
  disabled: boolean;
  mac?: string;
}

function parentOf(path: string): string {
  const segments = path.split('/').filter((x) => x !== '');
  return `/${segments.slice(0, -1).join('/')}`;
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
  /** `actor`: with record MACs on, the gateway decides access itself from verified records (access.ts). */
  constructor(readonly client: VaultClient, private readonly integrity: RecordIntegrity = selfConsistency, private readonly actor?: AccessActor) {}

  /** The gateway's own access check (only with record MACs and an actor; else the storage service decides alone). */
  private async require(path: string, needed: Role, verifiedLeaf?: NodeInfo): Promise<void> {
    if (!this.actor || !this.integrity.grantMac) return;
    await requireVerifiedRole(this.client, this.integrity, this.actor, path, needed, verifiedLeaf);
  }

  /** `needed` on `path` if it exists, else on its parent (where it would be created). */
  private async requireHereOrParent(path: string, needed: Role): Promise<void> {
    try {
      await this.require(path, needed);
    } catch (e) {
      if (!(e instanceof CofferError) || e.code !== ErrorCode.NOT_FOUND) throw e;
      await this.require(parentOf(path), needed);
    }
  }

  /**
   * A refused record (INTEGRITY) goes into the storage service's audit chain as `integrity.refused` (best effort:
   * the refusal stands either way; the enclave's log has it too). Other errors are ignored here.
   */
  async auditRefusal(e: unknown): Promise<void> {
    if (!(e instanceof CofferError) || e.code !== ErrorCode.INTEGRITY) return;
    const d = (e.details ?? {}) as { kind?: unknown; target?: unknown };
    const kind = typeof d.kind === 'string' ? d.kind : 'record';
    const target = typeof d.target === 'string' ? d.target.slice(0, 1024) : '';
    await this.client.reportRefusal({ kind, target, reason: e.message.slice(0, 1024) }).catch(() => undefined);
  }

  whoami(): Promise<{ user: string; admin: boolean }> {
    return this.client.whoami();
  }

  /**
   * The caller's own status, checked before anything else is done for them (record MACs on): a status record whose
   * MAC does not verify is refused (INTEGRITY, audited), a disabled user is PERMISSION_DENIED. The service refuses
   * a user disabled in its store by itself; this catches the store edited back to "enabled".
   */
  async admit(): Promise<void> {
    if (!this.actor || !this.integrity.checkUser) return;
    const status = await this.client.userStatus(this.actor.user);
    if (status.user !== this.actor.user) throw new CofferError(ErrorCode.INTEGRITY, `the storage service answered the status of ${JSON.stringify(status.user)} for ${this.actor.user}`, { details: { kind: 'user', target: this.actor.user } });
    this.integrity.checkUser(status);
    if (status.disabled) throw new CofferError(ErrorCode.PERMISSION_DENIED, `user ${this.actor.user} is disabled`);
  }

  /** Token admins (verified in the enclave): disables or enables `user`, with the enclave's MAC of the new status. */
  async setUserDisabled(user: string, disabled: boolean): Promise<UserStatus> {
    if (!this.actor?.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, `${disabled ? 'disable' : 'enable'} users: only a token admin may`);
    if (disabled && user === this.actor.user) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'you cannot disable yourself');
    if (!this.integrity.userMac) throw new CofferError(ErrorCode.UNAVAILABLE, 'user status needs record MACs (this enclave runs without its metadata key)');
    const updated = await this.client.setUserStatus(user, { disabled, mac: this.integrity.userMac(user, disabled) });
    if (updated.user !== user || updated.disabled !== disabled) throw new CofferError(ErrorCode.INTEGRITY, `the storage service did not record ${user} as ${disabled ? 'disabled' : 'enabled'}`, { details: { kind: 'user', target: user } });
    return updated;
  }

  async stat(path: string): Promise<NodeInfo> {
    await this.require(path, 'read');
    const node = await this.client.stat(path);
    await this.integrity.checkNode(node, path);
    return node;
  }

  async file(path: string): Promise<FileRecord> {
    const { node, manifest } = await this.client.manifestByPath(path);
    if (this.integrity.endorseFile && node.mac === undefined && manifest.mac === undefined && node.type === 'file') {
      // a file a client committed itself: verified (uploader tag, every chunk) and endorsed before anything else
      // is decided from it; only then the caller's access, from verified records including this one
      const endorsed = await this.integrity.endorseFile(this.client, path);
      await this.require(path, 'read', endorsed.node);
      return endorsed;
    }
    await this.integrity.checkNode(node, path);
    await this.integrity.checkFile(node, manifest);
    await this.require(path, 'read', node);
    return { node, manifest };
  }

  async list(path: string, options: { after?: string; limit?: number } = {}): Promise<{ items: NodeInfo[]; next: string | null }> {
    await this.require(path, 'read');
    const page = await this.client.list(path, options);
    const prefix = path === '/' ? '/' : `${path}/`;
    const items: NodeInfo[] = [];
    for (const item of page.items) {
      if (!item.path.startsWith(prefix) || item.path.slice(prefix.length).includes('/')) throw integrity(`listing of ${path} holds ${item.path}`);
      try {
        await this.integrity.checkNode(item, null);
      } catch (e) {
        // an entry that does not verify (e.g. a directory made at the storage service, never endorsed) is left out
        // of the listing and audited; the rest of the directory is still listed (docs/metadata.md "Record MACs")
        if (!(e instanceof CofferError) || e.code !== ErrorCode.INTEGRITY) throw e;
        await this.auditRefusal(e);
        continue;
      }
      items.push(item);
    }
    return { items, next: page.next };
  }

  async grants(path: string): Promise<Grant[]> {
    await this.require(path, 'admin');
    const at = this.integrity.grantMac ? (await this.stat(path)).path : path; // grant MACs bind the canonical path
    const { grants } = await this.client.grants(at);
    await this.integrity.checkGrants(at, grants);
    return grants;
  }

  /** Idempotent on the service (the same request answers the same upload), so retried after transient failures. */
  async createUpload(request: UploadRequest): Promise<UploadState> {
    // a new file only (no overwrite: the service refuses ALREADY_EXISTS when one is there) is made in the parent,
    // so the parent's role decides and the leaf need not be looked up (one request less per new file); replacing
    // a file checks the role on that file, its record verified. A parent that refuses is asked about the leaf as
    // before, so a caller with a role on an existing file only still gets ALREADY_EXISTS, not PERMISSION_DENIED.
    if (request.overwrite === false) {
      await this.require(parentOf(request.path), 'write').catch(async (e: unknown) => {
        if (!(e instanceof CofferError) || e.code !== ErrorCode.PERMISSION_DENIED) throw e;
        await this.requireHereOrParent(request.path, 'write');
      });
    } else {
      await this.requireHereOrParent(request.path, 'write');
    }
    const prepared = await this.integrity.prepareUpload(request);
    return this.client.createUpload(prepared); // retried by the client (idempotent)
  }

  putChunk(blobId: string, index: number, sealed: Uint8Array): Promise<unknown> {
    return this.client.putChunk(blobId, index, sealed);
  }

  /** `dek`: the blob's data key, for its record MACs (the caller keeps and wipes it). */
  async commit(blobId: string, chunkCount: number, size: number, dek?: Uint8Array): Promise<FileRecord> {
    // commit is idempotent (docs/http-api.md): the client repeats it after a lost answer or a storage service restart
    const { node, manifest } = await this.client.commit(blobId, chunkCount, size);
    await this.integrity.checkCommitted(node, manifest);
    if (!this.integrity.commitMacs || !dek) return { node, manifest };
    const macs = this.integrity.commitMacs(node, manifest, dek);
    // independent records: both at once (either missing leaves the file refused on read, never trusted)
    const [, endorsed] = await Promise.all([this.client.setBlobMac(blobId, macs.blob), this.setNodeMac(node, macs.node)]);
    return { node: endorsed, manifest: { ...manifest, mac: macs.blob } };
  }

  /**
   * Attaches a node MAC at the version the gateway saw. A CONFLICT means someone changed the node meanwhile (an
   * overwrite, a move): that write attaches its own MAC, and this one would not verify anyway.
   */
  private async setNodeMac(node: NodeInfo, mac: string): Promise<NodeInfo> {
    try {
      return await this.client.setNodeMac(node.path, node.version, mac); // a PUT: retried by the client
    } catch (e) {
      if (e instanceof CofferError && e.code === ErrorCode.CONFLICT) return node;
      throw e;
    }
  }

  abort(blobId: string): Promise<unknown> {
    return this.client.abort(blobId);
  }

  /** A sealed chunk of this caller's upload in progress, read into the start of `into` (checked by whoever opens it). */
  getUploadChunkInto(blobId: string, index: number, into: Buffer): Promise<Buffer> {
    return this.client.getUploadChunkInto(blobId, index, into);
  }

  /** One whole sealed chunk read into the start of `into`. Its bytes are checked by whoever opens it (AES-GCM, header). */
  getChunkInto(blobId: string, index: number, into: Buffer): Promise<Buffer> {
    return this.client.getChunkInto(blobId, index, into);
  }

  async mkdir(path: string, parents: boolean): Promise<NodeInfo> {
    if (!this.integrity.nodeMac) {
      const node = await this.client.mkdir(path, parents);
      await this.integrity.checkNode(node, path);
      return node;
    }
    // one directory at a time, so that exactly the directories this call creates get a MAC (an existing one
    // without a MAC is never endorsed on the way: it could be the host's)
    const segments = path.split('/').filter((x) => x !== '');
    const steps = parents ? segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`) : [path];
    for (const [i, step] of steps.entries()) {
      const last = i === steps.length - 1;
      if (parents) {
        const existing = await this.stat(step).catch((e: unknown) => {
          if (e instanceof CofferError && e.code === ErrorCode.NOT_FOUND) return null;
          throw e;
        });
        if (existing?.type === 'dir') {
          if (last) return existing;
          continue;
        }
      }
      let node: NodeInfo;
      try {
        await this.require(parentOf(step), 'write');
        node = await this.client.mkdir(step, false);
      } catch (e) {
        if (parents && e instanceof CofferError && e.code === ErrorCode.ALREADY_EXISTS) {
          if (last) return this.stat(step);
          continue;
        }
        throw e;
      }
      await selfConsistency.checkNode(node, step);
      if (node.type !== 'dir' || node.blobId !== null) throw integrity(`the storage service answered a mkdir of ${step} with a ${node.type}`);
      const endorsed = await this.setNodeMac(node, this.integrity.nodeMac(node));
      if (last) return endorsed;
    }
    return this.stat(path); // only for the root ("mkdir -p /")
  }

  /**
   * Moves a node. With record MACs: the node (and, for a directory, every node below it) and their grants get MACs
   * at their new paths — each only if its MAC verified at the old path, so a move never endorses what was not.
   */
  async move(from: string, to: string, overwrite: boolean): Promise<NodeInfo> {
    if (!this.integrity.movedNodeMac) {
      const node = await this.client.move(from, to, overwrite);
      await this.integrity.checkNode(node, to);
      return node;
    }
    const before = await this.stat(from);
    await this.require(from, 'write');
    await this.requireHereOrParent(to, 'write');
    const node = await this.client.move(from, to, overwrite);
    if (node.id !== before.id || node.type !== before.type || node.blobId !== before.blobId || node.owner !== before.owner) {
      throw integrity(`the storage service answered the move of ${from} with another node`);
    }
    const moved = await this.remac(node, before.path);
    await this.integrity.checkNode(moved, to);
    if (node.type === 'dir') await this.remacBelow(moved.path, before.path);
    return moved;
  }

  /** A moved node's MAC and its grants' MACs at its new path (a node whose old MAC did not verify stays refused). */
  private async remac(node: NodeInfo, oldPath: string): Promise<NodeInfo> {
    const integrityOf = this.integrity as Required<Pick<RecordIntegrity, 'movedNodeMac' | 'movedGrantMac'>>;
    let mac: string;
    try {
      mac = integrityOf.movedNodeMac({ ...node, mac: node.mac }, oldPath);
    } catch (e) {
      if (e instanceof CofferError && e.code === ErrorCode.INTEGRITY) return node;
      throw e;
    }
    const updated = await this.setNodeMac(node, mac);
    const { grants } = await this.client.grants(node.path).catch(() => ({ grants: [] as Array<Grant & { mac?: string }> }));
    for (const g of grants) {
      try {
        await this.client.putGrant(node.path, g.user, g.role, integrityOf.movedGrantMac(g, oldPath, node.path));
      } catch (e) {
        if (!(e instanceof CofferError) || (e.code !== ErrorCode.INTEGRITY && e.code !== ErrorCode.PERMISSION_DENIED)) throw e;
      }
    }
    return updated;
  }

  private async remacBelow(dir: string, oldDir: string): Promise<void> {
    let after: string | undefined;
    do {
      const page = await this.client.list(dir, after === undefined ? {} : { after });
      for (const item of page.items) {
        const oldPath = `${oldDir === '/' ? '' : oldDir}${item.path.slice(dir === '/' ? 0 : dir.length)}`;
        await this.remac(item, oldPath);
        if (item.type === 'dir') await this.remacBelow(item.path, oldPath);
      }
      after = page.next ?? undefined;
    } while (after !== undefined);
  }

  async remove(path: string, recursive: boolean): Promise<{ removed: number }> {
    await this.require(path, 'write');
    return this.client.remove(path, recursive);
  }

  async putGrant(path: string, user: string, role: string): Promise<unknown> {
    if (!this.integrity.grantMac) return this.client.putGrant(path, user, role);
    await this.require(path, 'admin');
    const at = (await this.stat(path)).path;
    return this.client.putGrant(at, user, role, this.integrity.grantMac(at, user, role));
  }

  async deleteGrant(path: string, user: string): Promise<unknown> {
    await this.require(path, 'admin');
    return this.client.deleteGrant(path, user);
  }

  close(): void {
    this.client.close();
  }
}
