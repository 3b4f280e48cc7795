// The gateway's plaintext file operations: the one module both the hono routes (routes.ts) and the S3 layer
// (issue 10) call. Plaintext exists only here, inside the enclave: uploads are cut into 8 MiB chunks and sealed
// under a fresh data key from the KMS (Recipient), then sent to the untrusted storage service; downloads fetch
// only the chunks a byte range needs, authenticate and open each before a single byte of it is handed on.
//
// Streaming and flat memory: an upload holds one plaintext chunk buffer (sealStream, pooled) and
// `STORE_CONCURRENCY` sealed chunks in flight; a read holds `READ_AHEAD` chunk buffers from a pool. Across
// requests, a TransferBudget caps the sealing streams (SEAL_SLOTS) and the opened chunk buffers of reads
// (READ_SLOTS): requests beyond it wait, unread, so the enclave's peak memory does not grow with concurrency.
// Every record from the storage service goes through GatewayRecords (records.ts), where integrity checks plug in.
//
// Stable interface (other layers depend on it): Caller, FileOps and its methods, PutOptions/PutResult,
// OpenedFile.read/stream. Add to it; do not change what is there.
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { BufferPool } from '../../src/buffer-pool.js';
import type { VaultClient } from '../../src/client/vault-client.js';
import {
  CHUNK_SIZE, HEADER_SIZE, MAX_SEALED_SIZE, blobIdFromHex, blobIdToHex, expectedChunkLayout, newBlobId, openChunkInto,
} from '../../src/crypto/index.js';
import { CofferError, ErrorCode, isCofferError } from '../../src/errors.js';
import type { RootRole } from './access.js';
import type { EnclaveDataKeys } from './data-keys.js';
import { PlacedUploads } from './placed-uploads.js';
import { STORE_CONCURRENCY, sealAndStore, type SealStoreResult } from './seal-store.js';
import { TransferBudget, admitStream, type Release } from './transfer-budget.js';
import { GatewayRecords, selfConsistency, type FileRecord, type Grant, type NodeInfo, type RecordIntegrity, type UserStatus } from './records.js';

export type { Grant, NodeInfo, UserStatus };

/** Chunks fetched and opened ahead of the one being sent by one read. */
const READ_AHEAD = 2;
/**
 * Sealing streams at once in the whole enclave (each 1 plaintext + ≤ STORE_CONCURRENCY + 1 sealed chunks, ≤ 40 MiB):
 * about what one `aws s3 cp` (10 parts in flight) keeps busy on two cores, so one upload runs at full speed and
 * sixteen share it. docs/s3-api.md "Memory under concurrency".
 */
export const SEAL_SLOTS = 8;
/** Opened 8 MiB chunk buffers of reads at once in the whole enclave (a read needs 1, and uses READ_AHEAD more). */
export const READ_SLOTS = 16;

/** Who asks: verified inside the enclave from their bearer token, which is also what the storage service sees. */
export interface Caller {
  user: string;
  admin: boolean;
  /** The caller's bearer token (forwarded to the storage service, which applies its own permission checks too). */
  token: string;
  /**
   * One client request that makes several calls (an S3 request: a part's claim, seal and record): the caller's
   * status is then checked once for it (as a native request is admitted once, at its start), for at most
   * ADMISSION_MS; without it, every call checks. The object is only compared by identity.
   */
  session?: object;
}

/** How long one admission of a session (Caller.session) stands: background work of a request (the S3 joiner) is admitted again after it. */
const ADMISSION_MS = 30_000;

export interface PutOptions {
  /** Plaintext size if known in advance (Content-Length): checked at commit. Unknown: whatever the source yields. */
  size?: number;
  /** Replace an existing file (default true, as an HTTP PUT does); false → ALREADY_EXISTS if one is there. */
  overwrite?: boolean;
  /** Digests of the plaintext to compute while it streams through (e.g. 'md5' for S3 ETags). */
  digests?: Array<'sha256' | 'md5'>;
}

export interface PutResult {
  node: NodeInfo;
  size: number;
  chunkCount: number;
  /** Requested digests, lowercase hex. */
  digests: Partial<Record<'sha256' | 'md5', string>>;
}

/** A file opened for reading: its checked records and its key. Close it when done (zeroes the key). */
export interface OpenedFile {
  node: NodeInfo;
  size: number;
  /** Strong validator of the content: the blob id (a blob is immutable; new content is a new blob). */
  etag: string;
  /**
   * Reads plaintext bytes [start, end) (0 ≤ start ≤ end ≤ size), calling `sink` with each piece in order and
   * awaiting it before the piece's memory is reused: a piece is valid only until the sink's promise settles.
   * Only the chunks the range needs are fetched; each is authenticated before any byte of it reaches the sink.
   * Throws CHUNK_AUTH_FAILED / CHUNK_MISMATCH / CHUNK_FORMAT / INTEGRITY for a bad chunk (nothing of it was given
   * to the sink), the storage service's errors, and whatever the sink throws.
   */
  read(start: number, end: number, sink: (piece: Uint8Array) => Promise<void>): Promise<void>;
  /** The same bytes as a Readable (each piece copied; for consumers that keep pieces). */
  stream(start: number, end: number): Readable;
  close(): void;
}

export interface FileOpsOptions {
  /** A storage-service client acting for this caller (its token on every request). */
  storage: (caller: Caller) => VaultClient;
  keys: EnclaveDataKeys;
  integrity?: RecordIntegrity;
  /** The default role every user has on '/' as the enclave decides access (record MACs on); default 'none'. */
  defaultRootRole?: RootRole;
  /** Sealing streams and opened read buffers at once across all callers (default SEAL_SLOTS, READ_SLOTS). */
  budget?: { seals?: number; reads?: number; trickleMs?: number };
}

/**
 * The plaintext operations. Errors are CofferErrors with the storage service's codes (NOT_FOUND,
 * PERMISSION_DENIED, ALREADY_EXISTS, IS_A_DIRECTORY, …), UNAVAILABLE (retryable: the storage service or the KMS
 * cannot be reached), KMS_ACCESS_DENIED, INTEGRITY and the chunk codes.
 */
export class FileOps {
  private readonly pool: BufferPool;
  private readonly integrity: RecordIntegrity;
  private placed: PlacedUploads | undefined;
  /** Sessions (Caller.session) admitted: for which user, and when. */
  private readonly admitted = new WeakMap<object, { user: string; at: number }>();
  /** The enclave-wide budgets (transfer-budget.ts): sealing streams, and opened chunk buffers of reads. */
  readonly sealBudget: TransferBudget;
  readonly readBudget: TransferBudget;

  constructor(private readonly options: FileOpsOptions) {
    this.integrity = options.integrity ?? selfConsistency;
    this.sealBudget = new TransferBudget(options.budget?.seals ?? SEAL_SLOTS);
    this.readBudget = new TransferBudget(options.budget?.reads ?? READ_SLOTS);
    // enough kept buffers that a busy enclave reuses them instead of making (and page-faulting) new ones
    // (a sealing stream uses one plaintext and ≤ STORE_CONCURRENCY + 1 sealed buffers, a read slot one buffer)
    this.pool = new BufferPool(MAX_SEALED_SIZE, Math.min(64, this.sealBudget.slots * (STORE_CONCURRENCY + 2) + this.readBudget.slots));
  }

  /** Uploads held open across requests, their chunks placed by index (the S3 layer's multipart). */
  get placedUploads(): PlacedUploads {
    this.placed ??= new PlacedUploads((caller, fn) => this.with(caller, fn), this.options.keys, this.pool, (source) => this.admitSeal(source));
    return this.placed;
  }

  /** A slot of the seal budget for a stream about to pull `source` (transfer-budget.ts admitStream). */
  private admitSeal(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ release: Release; source: AsyncIterable<Uint8Array> }> {
    return admitStream(this.sealBudget, source, this.options.budget?.trickleMs === undefined ? {} : { trickleMs: this.options.budget.trickleMs });
  }

  /** The caller's records (the one door to the storage service). Close it when done. */
  records(caller: Caller): GatewayRecords {
    return new GatewayRecords(this.options.storage(caller), this.integrity, { user: caller.user, admin: caller.admin, defaultRootRole: this.options.defaultRootRole ?? 'none' });
  }

  /**
   * The caller's status check (GatewayRecords.admit), once per session within ADMISSION_MS (Caller.session). A
   * failed check is not remembered, so a refused caller is refused again at every call.
   */
  private async admit(records: GatewayRecords, caller: Caller): Promise<void> {
    const session = caller.session;
    const kept = session === undefined ? undefined : this.admitted.get(session);
    if (kept !== undefined && kept.user === caller.user && Date.now() - kept.at < ADMISSION_MS) return;
    await records.admit();
    if (session !== undefined) this.admitted.set(session, { user: caller.user, at: Date.now() });
  }

  private async with<T>(caller: Caller, fn: (r: GatewayRecords) => Promise<T>): Promise<T> {
    const r = this.records(caller);
    try {
      await this.admit(r, caller);
      return await fn(r);
    } catch (e) {
      await r.auditRefusal(e);
      throw e;
    } finally {
      r.close();
    }
  }

  stat(caller: Caller, path: string): Promise<NodeInfo> {
    return this.with(caller, (r) => r.stat(path));
  }

  list(caller: Caller, path: string, options: { after?: string; limit?: number } = {}): Promise<{ items: NodeInfo[]; next: string | null }> {
    return this.with(caller, (r) => r.list(path, options));
  }

  mkdir(caller: Caller, path: string, parents = false): Promise<NodeInfo> {
    return this.with(caller, (r) => r.mkdir(path, parents));
  }

  move(caller: Caller, from: string, to: string, overwrite = false): Promise<NodeInfo> {
    return this.with(caller, (r) => r.move(from, to, overwrite));
  }

  remove(caller: Caller, path: string, recursive = false): Promise<{ removed: number }> {
    return this.with(caller, (r) => r.remove(path, recursive));
  }

  grants(caller: Caller, path: string): Promise<Grant[]> {
    return this.with(caller, (r) => r.grants(path));
  }

  putGrant(caller: Caller, path: string, user: string, role: string): Promise<unknown> {
    return this.with(caller, (r) => r.putGrant(path, user, role));
  }

  deleteGrant(caller: Caller, path: string, user: string): Promise<unknown> {
    return this.with(caller, (r) => r.deleteGrant(path, user));
  }

  whoami(caller: Caller): Promise<{ user: string; admin: boolean }> {
    return this.with(caller, (r) => r.whoami());
  }

  /** Token admins: disables or enables a user, the new status MACed in the enclave (docs/metadata.md "Users' status"). */
  setUserDisabled(caller: Caller, user: string, disabled: boolean): Promise<UserStatus> {
    return this.with(caller, (r) => r.setUserDisabled(user, disabled));
  }

  /** Copies a file: its plaintext re-sealed under a new data key as a new blob (blobs are never shared). */
  async copy(caller: Caller, from: string, to: string, overwrite = false): Promise<PutResult> {
    const src = await this.open(caller, from);
    try {
      return await this.put(caller, to, src.stream(0, src.size), { size: src.size, overwrite });
    } finally {
      src.close();
    }
  }

  /**
   * Seals a plaintext stream and stores it at `path`, which appears (or switches to the new content) only when
   * every chunk is durable and the commit succeeded: a failure or a crash at any point leaves no half file.
   * A failed upload is abandoned on the service (its chunks are freed by GC). Throws as the class says, plus
   * CONFLICT when the source yields another number of bytes than `size`.
   */
  async put(caller: Caller, path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    const records = this.records(caller);
    const hashes = new Map<'sha256' | 'md5', Hash>((options.digests ?? []).map((d) => [d, createHash(d)]));
    const blobIdHex = blobIdToHex(newBlobId());
    let created = false;
    let dek: Uint8Array | undefined;
    try {
      // the caller's status and the new data key at once (one round trip less before the body is pulled); a
      // refused caller gets nothing: the key is zeroed unused
      const [status, generated] = await Promise.allSettled([this.admit(records, caller), this.options.keys.newDataKey(blobIdHex)]);
      if (generated.status === 'fulfilled') dek = generated.value.dek;
      if (status.status === 'rejected') throw status.reason;
      if (generated.status === 'rejected') throw generated.reason;
      const key = generated.value;
      const dataKey = key.dek;
      await records.createUpload({
        path, blobId: blobIdHex, keyGeneration: 1, keyRecord: key.keyRecord, overwrite: options.overwrite ?? true,
        ...(options.size === undefined ? {} : { size: options.size }),
      });
      created = true;
      const hashed = hashes.size === 0 ? source : tee(source, [...hashes.values()]);
      // a slot before the body is pulled: beyond the budget the body waits in the socket (trickling: admitStream)
      const admitted = await this.admitSeal(hashed);
      let sent: SealStoreResult;
      try {
        sent = await sealAndStore(records, this.pool, { blobIdHex, dek: dataKey }, admitted.source);
      } finally {
        admitted.release();
      }
      const { chunks: chunkCount, total } = sent;
      if (options.size !== undefined && total !== options.size) {
        throw new CofferError(ErrorCode.CONFLICT, `the body had ${total} bytes, not the ${options.size} announced`);
      }
      const { node } = await records.commit(blobIdHex, chunkCount, total, dataKey); // the data key: for the record MACs
      created = false; // committed: nothing to abandon
      const digests: PutResult['digests'] = {};
      for (const [name, h] of hashes) digests[name] = h.digest('hex');
      return { node, size: total, chunkCount, digests };
    } catch (e) {
      if (created) await records.abort(blobIdHex).catch(() => undefined);
      await records.auditRefusal(e);
      throw e;
    } finally {
      dek?.fill(0);
      records.close();
    }
  }

  /**
   * Opens a file for reading: its records (checked), and its data key from the KMS. Throws NOT_FOUND,
   * IS_A_DIRECTORY, PERMISSION_DENIED, KEY_INVALID (a key-file blob: read it with the client), KMS errors.
   */
  async open(caller: Caller, path: string): Promise<OpenedFile> {
    const records = this.records(caller);
    let file: FileRecord;
    let dek: Uint8Array;
    try {
      await records.admit();
      file = await records.file(path);
      dek = await this.options.keys.openDataKey(file.manifest.keyRecord, file.manifest.blobId);
      // the opened key must be the one the blob's record commits to (record MACs), before any chunk is opened
      await this.integrity.checkDataKey?.(file, dek).catch((e: unknown) => {
        dek.fill(0);
        throw e;
      });
    } catch (e) {
      await records.auditRefusal(e);
      records.close();
      throw e;
    }
    const buffers = { pool: this.pool, budget: this.readBudget };
    const { node, manifest } = file;
    const read = (start: number, end: number, sink: (piece: Uint8Array) => Promise<void>): Promise<void> =>
      readRange(records, buffers, manifest, dek, start, end, sink);
    return {
      node,
      size: manifest.size,
      etag: manifest.blobId,
      read,
      stream: (start, end) => rangeStream(read, start, end),
      close: () => {
        dek.fill(0);
        records.close();
      },
    };
  }
}

/** Feeds every piece of `source` to the hashes on its way through. */
async function* tee(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, hashes: Hash[]): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    for (const h of hashes) h.update(piece);
    yield piece;
  }
}

/** An opened chunk of a read: its pooled buffer, the plaintext view into it, and its read-budget slot. */
interface Opened {
  buf: Buffer;
  plaintext: Uint8Array;
  release: () => void;
}

async function readRange(
  records: GatewayRecords, buffers: { pool: BufferPool; budget: TransferBudget }, manifest: FileRecord['manifest'], dek: Uint8Array,
  start: number, end: number, sink: (piece: Uint8Array) => Promise<void>,
): Promise<void> {
  const { pool, budget } = buffers;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > manifest.size) {
    throw new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, `range ${start}-${end} is outside the file (${manifest.size} bytes)`);
  }
  if (start === end) return;
  const layout = expectedChunkLayout(manifest.size);
  const blobId = blobIdFromHex(manifest.blobId);
  const first = Math.floor(start / CHUNK_SIZE);
  const last = Math.floor((end - 1) / CHUNK_SIZE);
  // fetch-and-open of chunk i+1.. runs while chunk i is handed to the sink; each opened chunk is a pooled buffer
  // held with one slot of the read budget: only the chunk needed next waits for one, read-ahead takes free slots,
  // so a read never waits while holding a slot it would need to go on
  const fetchOpen = async (index: number, slot: Promise<Release>): Promise<Opened> => {
    const release = await slot;
    const buf = pool.acquire();
    try {
      const sealed = await records.getChunkInto(manifest.blobId, index, buf);
      const plaintext = openChunkInto(dek, sealed, {
        blobId, index, keyGeneration: manifest.keyGeneration, final: index === manifest.chunkCount - 1, plaintextLength: layout.plaintextLengthOf(index),
      }, sealed.subarray(HEADER_SIZE));
      return { buf, plaintext, release };
    } catch (e) {
      buf.fill(0);
      pool.release(buf);
      release();
      throw e;
    }
  };
  const ahead: Array<Promise<Opened>> = [];
  let next = first;
  const schedule = (): void => {
    while (next <= last && ahead.length < READ_AHEAD) {
      // the chunk needed next waits for a slot; read-ahead only takes a free one (a busy enclave reads in step)
      let slot: Promise<Release>;
      if (ahead.length === 0) {
        slot = budget.acquire();
      } else {
        const free = budget.tryAcquire();
        if (free === null) return;
        slot = Promise.resolve(free);
      }
      const p = fetchOpen(next++, slot);
      p.catch(() => undefined); // observed below, in order
      ahead.push(p);
    }
  };
  try {
    for (let index = first; index <= last; index++) {
      schedule();
      const { buf, plaintext, release } = await (ahead.shift() as Promise<Opened>);
      const offset = index * CHUNK_SIZE;
      const from = Math.max(start - offset, 0);
      const to = Math.min(end - offset, plaintext.length);
      try {
        await sink(plaintext.subarray(from, to));
      } finally {
        buf.fill(0, 0, HEADER_SIZE + plaintext.length);
        release();
      }
      pool.release(buf);
    }
  } finally {
    // whatever was fetched ahead and not consumed: wait for it, then wipe it (it may hold plaintext)
    for (const p of ahead.splice(0)) {
      const got = await p.catch(() => null);
      if (got) {
        got.buf.fill(0);
        pool.release(got.buf);
        got.release();
      }
    }
  }
}

function rangeStream(read: OpenedFile['read'], start: number, end: number): Readable {
  const pieces = (async function* (): AsyncGenerator<Buffer> {
    const queue: Buffer[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let error: unknown;
    let space: (() => void) | null = null;
    let cancelled = false;
    const running = read(start, end, async (piece) => {
      // copy in slices so a slow consumer holds at most a few MiB beyond the chunk being read
      for (let off = 0; off < piece.length; off += 1024 * 1024) {
        if (cancelled) throw new CofferError(ErrorCode.UNAVAILABLE, 'the reader went away');
        queue.push(Buffer.from(piece.subarray(off, Math.min(off + 1024 * 1024, piece.length))));
        wake?.();
        while (queue.length > 4) await new Promise<void>((r) => (space = r));
      }
    }).then(() => {
      done = true;
    }, (e: unknown) => {
      error = e;
      done = true;
    }).finally(() => wake?.());
    try {
      for (;;) {
        const item = queue.shift();
        if (item) {
          const s = space as (() => void) | null;
          space = null;
          s?.();
          yield item;
          continue;
        }
        if (done) {
          if (error !== undefined) throw error;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      cancelled = true;
      const s = space as (() => void) | null;
      s?.();
      await running;
    }
  })();
  return Readable.from(pieces, { objectMode: false });
}

/** True for failures a client should simply retry (the storage service or the KMS was unreachable). */
export function isRetryable(e: unknown): boolean {
  return isCofferError(e) && (e.retryable || e.code === ErrorCode.UNAVAILABLE);
}
