// VaultBackend over the enclave gateway's plaintext file operations (enclave/gateway/files.ts, FileOps): the
// adapter the S3 listener uses inside the enclave. Thin on purpose: FileOps already seals under KMS-released
// keys, reads byte ranges chunk by chunk and checks every record; this only renames. `callerFor` turns the
// user an access key belongs to into the gateway's Caller (with the bearer token the storage service sees).
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { FileOps, NodeInfo } from '../gateway/index.js';
import type { FileInfo, OpenedObject, PlacedUploadOps, Principal, PutOptions, VaultBackend } from './backend.js';

export type CallerFor = (who: Principal) => Promise<{ user: string; admin: boolean; token: string }>;

export class GatewayBackend implements VaultBackend {
  readonly placed: PlacedUploadOps;

  private readonly callerFor: CallerFor;

  /**
   * Every call made with one Principal object (the S3 handler makes one per request) is one session of FileOps:
   * the user's status is checked once per S3 request, not once per storage call (FileOps' Caller.session).
   */
  constructor(private readonly files: FileOps, callerFor: CallerFor) {
    this.callerFor = async (who) => ({ ...(await callerFor(who)), session: who });
    const uploads = files.placedUploads;
    const callerOf = this.callerFor;
    this.placed = {
      open: async (who, path) => uploads.open(await this.callerFor(who), path),
      seal: async (who, upload, first, body, size, endsBlob) => {
        await uploads.seal(await this.callerFor(who), upload, first, body, size, endsBlob);
      },
      read: (who, upload, first, count) => (async function* () {
        yield* uploads.read(await callerOf(who), upload, first, count);
      })(),
      commit: async (who, upload, chunkCount, size) => info(await uploads.commit(await this.callerFor(who), upload, chunkCount, size)),
      abort: async (who, blobId) => uploads.abort(await this.callerFor(who), blobId),
    };
  }

  async stat(who: Principal, path: string): Promise<FileInfo> {
    return info(await this.files.stat(await this.callerFor(who), path));
  }

  async list(who: Principal, dir: string, options: { after?: string; limit: number }): Promise<{ items: FileInfo[]; next: string | null }> {
    const page = await this.files.list(await this.callerFor(who), dir, options);
    return { items: page.items.map(info), next: page.next };
  }

  async mkdir(who: Principal, path: string, parents: boolean): Promise<FileInfo> {
    return info(await this.files.mkdir(await this.callerFor(who), path, parents));
  }

  async remove(who: Principal, path: string, recursive: boolean): Promise<void> {
    await this.files.remove(await this.callerFor(who), path, recursive);
  }

  async move(who: Principal, from: string, to: string, overwrite: boolean): Promise<FileInfo> {
    return info(await this.files.move(await this.callerFor(who), from, to, overwrite));
  }

  async put(who: Principal, path: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, options: PutOptions = {}): Promise<FileInfo> {
    const r = await this.files.put(await this.callerFor(who), path, body, { size, overwrite: options.overwrite ?? false });
    return info(r.node);
  }

  async read(who: Principal, path: string, range?: { start: number; end: number }, expectBlobId?: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    const file = await this.files.open(await this.callerFor(who), path);
    try {
      if (expectBlobId !== undefined && file.etag !== expectBlobId) throw new CofferError(ErrorCode.PRECONDITION_FAILED, `${path} changed`);
      const start = range?.start ?? 0;
      const end = range?.end ?? file.size;
      if (start < 0 || end > file.size || start > end) throw new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, 'range outside the file');
      const stream = file.stream(start, end);
      // the file (and its key) is closed once the stream ends, fails or is abandoned
      stream.once('close', () => file.close());
      return { info: info(file.node), body: stream };
    } catch (e) {
      file.close();
      throw e;
    }
  }

  async open(who: Principal, path: string): Promise<OpenedObject> {
    const file = await this.files.open(await this.callerFor(who), path);
    let closed = false;
    return {
      info: info(file.node),
      read: (start, end, sink) => file.read(start, end, sink),
      close: () => {
        if (closed) return;
        closed = true;
        file.close();
      },
    };
  }
}

function info(n: NodeInfo): FileInfo {
  return { path: n.path, name: n.name, type: n.type, size: n.size, blobId: n.blobId, modifiedAt: n.modifiedAt };
}
