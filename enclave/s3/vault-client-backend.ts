// VaultBackend over Coffer's own client library (src/client) in key-file mode: plaintext is sealed and opened
// here, with one key file, and the storage service sees only sealed chunks. This is how the S3 layer runs
// until the enclave gateway's plaintext file module (issue 9) is merged, and how its tests run against a real
// storage service on loopback. Each vault user gets a VaultClient with a development token minted for them
// (tokens are renewed before they expire), so grants apply per user as on the native API.
import { Readable } from 'node:stream';
import { HEADER_SIZE, MAX_SEALED_SIZE, blobIdFromHex, expectedChunkLayout, openChunkInto } from '../../src/crypto/index.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { uploadStream } from '../../src/client/upload.js';
import type { DataKeyProvider } from '../../src/client/data-keys.js';
import { VaultClient, type NodeInfo } from '../../src/client/vault-client.js';
import type { FileInfo, OpenedObject, Principal, PutOptions, VaultBackend } from './backend.js';

const CHUNK = 8 * 1024 * 1024;
const TOKEN_TTL_S = 3600;

export interface VaultClientBackendOptions {
  server: string;
  keys: DataKeyProvider;
  /** Mints a token for a user (e.g. mintDevToken over the service's data directory). */
  mintToken: (who: Principal, ttlSeconds: number) => Promise<string>;
  /** Extra trusted CA (PEM) when the storage service is https. */
  ca?: string;
  /** Sealed chunks in flight per upload / prefetched per download (default 4 / 2). */
  uploadConcurrency?: number;
  readAhead?: number;
}

export class VaultClientBackend implements VaultBackend {
  private readonly clients = new Map<string, { client: VaultClient; renewAt: number }>();

  constructor(private readonly options: VaultClientBackendOptions) {}

  private async client(who: Principal): Promise<VaultClient> {
    const id = `${who.admin ? 'A' : 'U'}:${who.user}`;
    const cached = this.clients.get(id);
    if (cached && cached.renewAt > Date.now()) return cached.client;
    cached?.client.close();
    const token = await this.options.mintToken(who, TOKEN_TTL_S);
    const client = new VaultClient({ server: this.options.server, token, ...(this.options.ca ? { ca: [this.options.ca] } : {}), maxSockets: 16 });
    this.clients.set(id, { client, renewAt: Date.now() + (TOKEN_TTL_S / 2) * 1000 });
    return client;
  }

  async stat(who: Principal, path: string): Promise<FileInfo> {
    return info(await (await this.client(who)).stat(path));
  }

  async list(who: Principal, dir: string, options: { after?: string; limit: number }): Promise<{ items: FileInfo[]; next: string | null }> {
    const page = await (await this.client(who)).list(dir, options);
    return { items: page.items.map(info), next: page.next };
  }

  async mkdir(who: Principal, path: string, parents: boolean): Promise<FileInfo> {
    return info(await (await this.client(who)).mkdir(path, parents));
  }

  async remove(who: Principal, path: string, recursive: boolean): Promise<void> {
    await (await this.client(who)).remove(path, recursive);
  }

  async move(who: Principal, from: string, to: string, overwrite: boolean): Promise<FileInfo> {
    return info(await (await this.client(who)).move(from, to, overwrite));
  }

  async put(who: Principal, path: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, options: PutOptions = {}): Promise<FileInfo> {
    const client = await this.client(who);
    const result = await uploadStream(client, body, size, {
      path, keys: this.options.keys, overwrite: options.overwrite ?? false, concurrency: this.options.uploadConcurrency ?? 4,
    }).catch((e: unknown) => {
      // the upload may be kept for a resume by a CLI; nothing resumes here, so free it now
      const blob = e instanceof CofferError ? e.details?.resumeBlobId : undefined;
      if (typeof blob === 'string') void client.abort(blob).catch(() => undefined);
      throw e;
    });
    return info(result.node);
  }

  async read(who: Principal, path: string, range?: { start: number; end: number }, expectBlobId?: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }> {
    const file = await this.openFile(who, path, expectBlobId);
    const start = range?.start ?? 0;
    const end = range?.end ?? file.info.size;
    try {
      checkRange(start, end, file.info.size);
    } catch (e) {
      file.close();
      throw e;
    }
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        yield* file.chunks(start, end);
      } finally {
        file.close();
      }
    }
    return { info: file.info, body: Readable.from(body(), { objectMode: false }) };
  }

  async open(who: Principal, path: string): Promise<OpenedObject> {
    const file = await this.openFile(who, path);
    return {
      info: file.info,
      read: async (start, end, sink) => {
        checkRange(start, end, file.info.size);
        for await (const piece of file.chunks(start, end)) await sink(piece);
      },
      close: file.close,
    };
  }

  /** The file's manifest (checked against its node) and its data key; `chunks` yields a range's plaintext. */
  private async openFile(who: Principal, path: string, expectBlobId?: string): Promise<{
    info: FileInfo; chunks: (start: number, end: number) => AsyncGenerator<Uint8Array>; close: () => void;
  }> {
    const client = await this.client(who);
    const { node, manifest } = await client.manifestByPath(path);
    if (expectBlobId !== undefined && manifest.blobId !== expectBlobId) throw new CofferError(ErrorCode.PRECONDITION_FAILED, `${path} changed`);
    const layout = expectedChunkLayout(manifest.size);
    if (manifest.state !== 'committed' || manifest.chunkCount !== layout.chunkCount || node.size !== manifest.size) {
      throw new CofferError(ErrorCode.INTEGRITY, `manifest of ${path} is inconsistent`);
    }
    const dek = await this.options.keys.openDataKey(manifest.keyRecord, manifest.blobId);
    const readAhead = Math.max(1, this.options.readAhead ?? 2);
    const blobId = blobIdFromHex(manifest.blobId);
    async function* chunks(start: number, end: number): AsyncGenerator<Uint8Array> {
      const first = Math.floor(start / CHUNK);
      const last = end === start ? first - 1 : Math.floor((end - 1) / CHUNK);
      const fetchOne = async (index: number): Promise<Uint8Array> => {
        const sealed = await client.getChunkInto(manifest.blobId, index, Buffer.allocUnsafe(MAX_SEALED_SIZE));
        // opened in place: the plaintext replaces the ciphertext in this buffer, which is handed on (not reused)
        return openChunkInto(dek, sealed, {
          blobId, index, keyGeneration: manifest.keyGeneration, final: index === manifest.chunkCount - 1, plaintextLength: layout.plaintextLengthOf(index),
        }, sealed.subarray(HEADER_SIZE));
      };
      const pending: Array<Promise<Uint8Array>> = [];
      let next = first;
      try {
        while (next <= last || pending.length > 0) {
          while (next <= last && pending.length < readAhead) {
            const p = fetchOne(next++);
            p.catch(() => undefined); // awaited in order below
            pending.push(p);
          }
          const index = next - pending.length;
          const plain = await (pending.shift() as Promise<Uint8Array>);
          const offset = index * CHUNK;
          yield plain.subarray(Math.max(0, start - offset), Math.min(plain.length, end - offset));
        }
      } finally {
        await Promise.allSettled(pending);
      }
    }
    return { info: info(node), chunks, close: () => dek.fill(0) };
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}

function checkRange(start: number, end: number, size: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > size || start > end) {
    throw new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, 'range outside the file');
  }
}

function info(n: NodeInfo): FileInfo {
  return { path: n.path, name: n.name, type: n.type, size: n.size, blobId: n.blobId, modifiedAt: n.modifiedAt };
}
