// The gateway's record checks with MACs (docs/metadata.md "Record MACs"): `MacIntegrity` implements the gateway's
// RecordIntegrity (enclave/gateway/records.ts), so every record the gateway reads passes through it. A record
// whose MAC is missing, malformed or wrong is refused (CofferError INTEGRITY, permanent) and reported to `onRefused`
// (the gateway audits it); nothing is served from it. It also makes the MACs of what the gateway writes.
import type { DataKeyProvider } from '../../src/client/data-keys.js';
import type { VaultClient } from '../../src/client/vault-client.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { ROOT_ID } from '../../src/metadata/types.js';
import { selfConsistency, type FileRecord, type Grant, type Manifest, type NodeInfo, type RecordIntegrity, type UploadRequest } from '../gateway/records.js';
import { endorseClientFile } from './endorse.js';
import type { MetadataMacKey } from './mac.js';
import type { BlobFacts, NodeFacts } from './records.js';

/** One refused record, for the audit trail. */
export interface IntegrityRefusal {
  kind: 'node' | 'blob' | 'grant' | 'user' | 'dataKey';
  /** The path, blob id or user concerned. */
  target: string;
  reason: string;
}

export function nodeFacts(node: NodeInfo): NodeFacts {
  return { id: node.id, path: node.path, type: node.type, blobId: node.blobId, size: node.size, owner: node.owner };
}

export function blobFacts(m: Manifest): BlobFacts {
  return {
    id: m.blobId, state: m.state, owner: m.owner, keyGeneration: m.keyGeneration, size: m.size, chunkCount: m.chunkCount,
    chunkSha256: m.chunks.map((c) => c.sha256),
  };
}

export class MacIntegrity implements RecordIntegrity {
  constructor(
    private readonly key: MetadataMacKey,
    private readonly onRefused: (r: IntegrityRefusal) => void = () => undefined,
    /** The enclave's data keys: with them, files a client committed itself are endorsed on first read. */
    private readonly keys?: DataKeyProvider,
    /** Development homes (docs/metadata.md "Home directories"): /home and /home/NAME are accepted by rule. */
    private readonly options: { homes?: boolean } = {},
  ) {}

  /** Runs the key-less checks; their refusals are reported like the MAC checks'. */
  private async consistent(kind: IntegrityRefusal['kind'], target: string, check: () => Promise<void>): Promise<void> {
    try {
      await check();
    } catch (e) {
      if (e instanceof CofferError && e.code === ErrorCode.INTEGRITY) this.refuse({ kind, target, reason: e.message });
      throw e;
    }
  }

  /** Reports a refusal found elsewhere (endorsement) and throws INTEGRITY. */
  reportRefusal(r: IntegrityRefusal): never {
    return this.refuse(r);
  }

  private refuse(r: IntegrityRefusal): never {
    this.onRefused(r);
    throw new CofferError(ErrorCode.INTEGRITY, `${r.kind} record of ${r.target} refused: ${r.reason}`, { details: { kind: r.kind, target: r.target } });
  }

  /**
   * The root has no MAC: it is made by the storage service before any enclave exists. It is accepted only as
   * the service makes it — id "root", a directory, bound to nothing, owned by nobody — since its owner would be
   * admin of everything.
   */
  async checkNode(node: NodeInfo, path: string | null): Promise<void> {
    await this.consistent('node', path ?? node.path, () => selfConsistency.checkNode(node, path));
    if (node.path === '/') {
      if (node.id !== ROOT_ID || node.type !== 'dir' || node.blobId !== null || node.size !== 0 || node.owner !== '') {
        this.refuse({ kind: 'node', target: '/', reason: 'the root is not as the storage service makes it' });
      }
      return;
    }
    if (node.mac === undefined && this.options.homes === true && isServiceMadeHome(node)) return;
    if (node.mac === undefined) this.refuse({ kind: 'node', target: node.path, reason: 'no enclave MAC (not endorsed)' });
    if (!this.key.verify('node', nodeFacts(node), node.mac)) this.refuse({ kind: 'node', target: node.path, reason: 'MAC does not match' });
  }

  /** The node must have been checked (checkNode) first: this checks the blob record and the binding. */
  async checkFile(node: NodeInfo, manifest: Manifest): Promise<void> {
    await this.consistent('blob', manifest.blobId, () => selfConsistency.checkFile(node, manifest));
    if (manifest.chunks.length !== manifest.chunkCount) this.refuse({ kind: 'blob', target: manifest.blobId, reason: 'chunk list and chunk count disagree' });
    if (manifest.mac === undefined) this.refuse({ kind: 'blob', target: manifest.blobId, reason: 'no enclave MAC (not endorsed)' });
    if (!this.key.verify('blob', blobFacts(manifest), manifest.mac)) this.refuse({ kind: 'blob', target: manifest.blobId, reason: 'MAC does not match' });
  }

  /** After the data key is opened, before any chunk is: it must be the key the blob's MAC commits to. */
  async checkDataKey(file: FileRecord, dek: Uint8Array): Promise<void> {
    if (!this.key.verifyDataKey(file.manifest.blobId, dek, file.manifest.mac)) {
      this.refuse({ kind: 'dataKey', target: file.manifest.blobId, reason: 'the wrapped key opens to another data key than the one committed to' });
    }
  }

  async checkGrants(path: string, grants: Grant[]): Promise<void> {
    for (const g of grants) {
      if (!this.key.verify('grant', { path, user: g.user, role: g.role }, (g as Grant & { mac?: string }).mac)) {
        this.refuse({ kind: 'grant', target: `${path} ${g.user}`, reason: 'no valid enclave MAC' });
      }
    }
  }

  /**
   * A user's status record. One with a MAC must verify (an edited `disabled` flag, or another user's MAC, is
   * refused). One with no MAC at all is a user whose status no enclave ever set — the service makes users on first
   * sight without one — and stands as the service says; deleting the MAC with the flag is the rollback case of
   * docs/metadata.md (a state once legitimate), which a MAC cannot tell from a user never disabled.
   */
  checkUser(status: { user: string; disabled: boolean; mac?: string }): void {
    if (status.mac === undefined) return;
    if (!this.key.verify('user', { name: status.user, disabled: status.disabled }, status.mac)) {
      this.refuse({ kind: 'user', target: status.user, reason: 'MAC does not match' });
    }
  }

  async prepareUpload(request: UploadRequest): Promise<UploadRequest> {
    return request;
  }

  async checkCommitted(node: NodeInfo, manifest: Manifest): Promise<void> {
    await selfConsistency.checkCommitted(node, manifest);
  }

  // ---- MACs of what the gateway writes (attached through the storage service's /v1/integrity routes) ----

  nodeMac(node: NodeInfo): string {
    return this.key.node(nodeFacts(node));
  }

  /** The MACs of a commit the gateway just made itself with `dek`. */
  commitMacs(node: NodeInfo, manifest: Manifest, dek: Uint8Array): { node: string; blob: string } {
    return { node: this.key.node(nodeFacts(node)), blob: this.key.blob(blobFacts(manifest), dek) };
  }

  grantMac(path: string, user: string, role: string): string {
    return this.key.grant({ path, user, role });
  }

  movedNodeMac(node: NodeInfo, oldPath: string): string {
    if (!this.key.verify('node', { ...nodeFacts(node), path: oldPath }, node.mac)) {
      this.refuse({ kind: 'node', target: oldPath, reason: 'moved, but its MAC did not verify at its old path: not endorsed at the new one' });
    }
    return this.key.node(nodeFacts(node));
  }

  movedGrantMac(grant: Grant & { mac?: string }, oldPath: string, newPath: string): string {
    if (!this.key.verify('grant', { path: oldPath, user: grant.user, role: grant.role }, grant.mac)) {
      this.refuse({ kind: 'grant', target: `${oldPath} ${grant.user}`, reason: 'moved, but its MAC did not verify at its old path: not endorsed at the new one' });
    }
    return this.key.grant({ path: newPath, user: grant.user, role: grant.role });
  }

  async endorseFile(client: VaultClient, path: string): Promise<FileRecord> {
    if (!this.keys) return this.refuse({ kind: 'node', target: path, reason: 'no enclave MAC (not endorsed)' });
    return endorseClientFile(client, this, this.keys, path);
  }

  userMac(user: string, disabled: boolean): string {
    return this.key.user({ name: user, disabled });
  }
}

/**
 * With development homes the storage service makes /home (owned by ':system', a name no token can carry) and
 * /home/NAME (owned by NAME) on a user's first request, before any enclave sees them. Such a node, exactly as the
 * service makes it, gives nobody more than the homes rule does (NAME owns their own home), so the enclave accepts it
 * without a MAC; anything else under /home, and any other shape, still needs one.
 */
function isServiceMadeHome(node: NodeInfo): boolean {
  if (node.type !== 'dir' || node.blobId !== null || node.size !== 0) return false;
  if (node.path === '/home') return node.owner === ':system';
  const m = /^\/home\/([^/]+)$/.exec(node.path);
  return m !== null && !(m[1] as string).startsWith(':') && node.owner === m[1];
}
