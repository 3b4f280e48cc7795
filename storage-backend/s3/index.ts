// The S3-compatible chunk store (docs/storage-backend.md "S3 store"): one object per chunk under
// `<prefix>chunks/<hex[0:2]>/<hex[2:4]>/<blob>/<index as 8 hex>`, the filesystem store's layout, so a bucket
// and a directory can be copied into each other. Built on @aws-sdk/client-s3; endpoint, region and credentials
// come from the options or the SDK's usual settings.
// - put: the source is read into memory up to 16 MiB (a sealed chunk is at most 8 MiB + 64) and stored with one
//   PutObject, which S3 makes visible atomically (old or new, never a mix); a larger object goes up as a
//   multipart upload of 8 MiB parts, visible only at CompleteMultipartUpload and aborted on any failure. An
//   abandoned multipart upload (a crash) is the S3 analogue of a temp file: sweepTemporary aborts it.
// - Retries with exponential backoff and jitter are the SDK's standard retry strategy (maxAttempts, default 5):
//   5xx, throttling and dropped connections. What still fails is a CofferError (errors.ts).
// - Every request goes through one p-limit queue per store (`concurrency`, default 16).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand,
  DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, UploadPartCommand, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import pLimit, { type LimitFunction } from 'p-limit';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { nextPiece, stopSource } from '../fs/write-chunk.js';
import { assertBlobId, assertChunkRef, assertPutOptions, assertSweepAge, chunkName, parseChunkName, resolveRange } from '../ref.js';
import type { ByteRange, ChunkRef, ChunkStat, ChunkStore, PutOptions, PutResult } from '../types.js';
import { isNotFound, s3Error } from './errors.js';

export interface S3ChunkStoreOptions {
  bucket: string;
  /** Key prefix, e.g. "coffer/" (a trailing slash is added when missing; "" for the bucket's root). */
  prefix?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  /** Attempts per request, the first included (default 5). */
  maxAttempts?: number;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Objects up to this size go up in one PutObject; larger ones as multipart uploads. */
export const SINGLE_PUT_LIMIT = 16 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;

export class S3ChunkStore implements ChunkStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly #limit: LimitFunction;
  readonly #where: string;
  #closed = false;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(options: S3ChunkStoreOptions) {
    const known = ['bucket', 'prefix', 'region', 'endpoint', 'forcePathStyle', 'concurrency', 'maxAttempts', 'credentials'];
    for (const k of Object.keys(options)) if (!known.includes(k)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown S3 chunk store option "${k}"`);
    if (typeof options.bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid S3 bucket name "${String(options.bucket)}"`);
    }
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string' || prefix.startsWith('/') || prefix.includes('//') || [...prefix].some((c) => c.charCodeAt(0) < 0x20)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid S3 key prefix "${String(prefix)}"`);
    }
    const concurrency = options.concurrency ?? 16;
    const maxAttempts = options.maxAttempts ?? 5;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'S3 concurrency must be 1..1024');
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 20) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'S3 maxAttempts must be 1..20');
    this.bucket = options.bucket;
    this.prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    const config: S3ClientConfig = {
      maxAttempts, retryMode: 'standard', region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
      // the SDK's default CRC32 checksums on every PutObject are left to when required: the store hashes itself
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.forcePathStyle ? { forcePathStyle: true } : {}),
      ...(options.credentials ? { credentials: { ...options.credentials } } : {}), // a copy: the SDK annotates it
    };
    this.client = new S3Client(config);
    this.#limit = pLimit(concurrency);
    this.#where = `s3://${this.bucket}/${this.prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
  }

  keyOf(ref: ChunkRef): string {
    return `${this.#blobPrefix(ref.blobId)}${chunkName(ref.index)}`;
  }

  #blobPrefix(blobId: string): string {
    return `${this.prefix}chunks/${blobId.slice(0, 2)}/${blobId.slice(2, 4)}/${blobId}/`;
  }

  #track<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the chunk store is closed'));
    const p = op();
    this.#inFlight.add(p);
    void p.catch(() => undefined).finally(() => this.#inFlight.delete(p));
    return p;
  }

  /** One request through the queue; SDK errors become CofferErrors. */
  #send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.#limit(fn).catch((e: unknown) => {
      throw s3Error(e, what, this.#where);
    });
  }

  put(ref: ChunkRef, data: Readable | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<PutResult> {
    return this.#track(async () => {
      assertChunkRef(ref);
      assertPutOptions(options);
      if (!(data instanceof Readable) && (typeof data !== 'object' || data === null || !(Symbol.asyncIterator in data))) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk data must be a Readable or an async iterable of bytes');
      }
      options.signal?.throwIfAborted();
      const key = this.keyOf(ref);
      const what = `put ${ref.blobId}/${ref.index}`;
      const hash = createHash('sha256');
      const parts: Buffer[] = [];
      let buffered = 0;
      let total = 0;
      let multipart: { uploadId: string; parts: Array<{ ETag: string; PartNumber: number }> } | null = null;
      const it = (data as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      const flushPart = async (final: boolean): Promise<void> => {
        while (buffered >= PART_SIZE || (final && buffered > 0)) {
          const all = Buffer.concat(parts);
          const body = all.subarray(0, Math.min(PART_SIZE, all.byteLength));
          parts.length = 0;
          if (all.byteLength > body.byteLength) parts.push(all.subarray(body.byteLength));
          buffered -= body.byteLength;
          if (!multipart) {
            const created = await this.#send(`${what}: start multipart upload`, () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key })));
            multipart = { uploadId: created.UploadId as string, parts: [] };
          }
          const mp: { uploadId: string; parts: Array<{ ETag: string; PartNumber: number }> } = multipart;
          const PartNumber = mp.parts.length + 1;
          const up = await this.#send(`${what}: part ${PartNumber}`, () => this.client.send(new UploadPartCommand({
            Bucket: this.bucket, Key: key, UploadId: mp.uploadId, PartNumber, Body: body, ContentLength: body.byteLength,
          })));
          mp.parts.push({ ETag: up.ETag as string, PartNumber });
        }
      };
      try {
        let finished = false;
        try {
          for (;;) {
            const step = await nextPiece(it, options.signal, what);
            if (step.done === true) break;
            const piece: unknown = step.value;
            if (!(piece instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what}: chunk data must be bytes, got ${typeof piece}`);
            total += piece.byteLength;
            if (options.maxBytes !== undefined && total > options.maxBytes) {
              throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `${what} is larger than the limit of ${options.maxBytes} bytes`, { details: { maxBytes: options.maxBytes } });
            }
            if (options.expectedSize !== undefined && total > options.expectedSize) throw this.#mismatch(what, total, options.expectedSize, 'at least');
            const copy = Buffer.from(piece); // the producer may reuse its buffer
            hash.update(copy);
            parts.push(copy);
            buffered += copy.byteLength;
            if (multipart || buffered > SINGLE_PUT_LIMIT) await flushPart(false);
          }
          finished = true;
        } finally {
          if (!finished) stopSource(data, it);
        }
        if (options.expectedSize !== undefined && total !== options.expectedSize) throw this.#mismatch(what, total, options.expectedSize, 'only');
        options.signal?.throwIfAborted();
        if (multipart) await flushPart(true);
        await options.beforeRename?.();
        // from here on the put completes: the PUT / Complete is the store's rename
        if (multipart) {
          const mp: { uploadId: string; parts: Array<{ ETag: string; PartNumber: number }> } = multipart;
          await this.#send(`${what}: complete multipart upload`, () => this.client.send(new CompleteMultipartUploadCommand({
            Bucket: this.bucket, Key: key, UploadId: mp.uploadId, MultipartUpload: { Parts: mp.parts },
          })));
          multipart = null;
        } else {
          const body = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
          await this.#send(what, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.byteLength })));
        }
        return { size: total, sha256: hash.digest('hex') };
      } catch (e) {
        if (multipart) {
          const mp: { uploadId: string } = multipart;
          await this.#send(`${what}: abort multipart upload`, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: mp.uploadId }))).catch(() => undefined);
        }
        if (options.signal?.aborted && e === options.signal.reason) throw e;
        throw e;
      }
    });
  }

  #mismatch(what: string, total: number, expected: number, how: string): CofferError {
    return new CofferError(ErrorCode.CHUNK_MISMATCH, `${what}: the data has ${how} ${total} bytes, expected ${expected}`, { details: { expectedSize: expected, received: total } });
  }

  get(ref: ChunkRef, range?: ByteRange): Promise<Readable> {
    return this.#track(async () => {
      assertChunkRef(ref);
      const key = this.keyOf(ref);
      const what = `get ${ref.blobId}/${ref.index}`;
      let Range: string | undefined;
      let IfMatch: string | undefined;
      if (range !== undefined) {
        // resolved against the real size first, so the edge cases answer exactly as the fs store does
        const head = await this.#head(key, what);
        if (!head) throw new CofferError(ErrorCode.NOT_FOUND, `${what}: not found in ${this.#where}`);
        const r = resolveRange(range, head.size);
        Range = `bytes=${r.start}-${r.end}`;
        IfMatch = head.etag;
      }
      const out = await this.#send(what, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range, IfMatch })));
      if (out.Body === undefined && out.ContentLength === 0) return Readable.from([]);
      return out.Body as Readable;
    });
  }

  readInto(ref: ChunkRef, into: Buffer): Promise<Buffer> {
    return this.#track(async () => {
      assertChunkRef(ref);
      const what = `read ${ref.blobId}/${ref.index}`;
      const out = await this.#send(what, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(ref) })));
      const body = out.Body as Readable | undefined;
      const size = out.ContentLength ?? 0;
      if (size > into.byteLength) {
        body?.destroy();
        throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `${what}: the chunk has ${size} bytes, the buffer ${into.byteLength}`);
      }
      let at = 0;
      try {
        for await (const piece of body ?? []) {
          const b = piece as Buffer;
          if (at + b.byteLength > size) throw new CofferError(ErrorCode.INTEGRITY, `${what}: the body is longer than its Content-Length`);
          b.copy(into, at);
          at += b.byteLength;
        }
      } catch (e) {
        body?.destroy();
        throw s3Error(e, what, this.#where);
      }
      if (at !== size) throw new CofferError(ErrorCode.UNAVAILABLE, `${what}: the connection ended after ${at} of ${size} bytes`, { retryable: true });
      return into.subarray(0, size);
    });
  }

  async #head(key: string, what: string): Promise<{ size: number; etag: string | undefined } | null> {
    try {
      const h = await this.#limit(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
      return { size: h.ContentLength ?? 0, etag: h.ETag };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw s3Error(e, what, this.#where);
    }
  }

  stat(ref: ChunkRef): Promise<ChunkStat | null> {
    return this.#track(async () => {
      assertChunkRef(ref);
      const h = await this.#head(this.keyOf(ref), `stat ${ref.blobId}/${ref.index}`);
      return h ? { size: h.size } : null;
    });
  }

  delete(ref: ChunkRef): Promise<void> {
    return this.#track(async () => {
      assertChunkRef(ref);
      await this.#send(`delete ${ref.blobId}/${ref.index}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(ref) })));
    });
  }

  deleteBlob(blobId: string): Promise<void> {
    return this.#track(async () => {
      assertBlobId(blobId);
      for (;;) {
        const keys = (await this.#listKeys(this.#blobPrefix(blobId), 1000)).keys;
        if (keys.length === 0) return;
        const out = await this.#send(`delete blob ${blobId}`, () => this.client.send(new DeleteObjectsCommand({
          Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
        })));
        if (out.Errors && out.Errors.length > 0) {
          throw new CofferError(ErrorCode.UNAVAILABLE, `delete blob ${blobId}: ${out.Errors.length} object(s) not deleted (${out.Errors[0]?.Code ?? 'error'})`, { retryable: true });
        }
      }
    });
  }

  async #listKeys(prefix: string, max?: number, token?: string): Promise<{ keys: string[]; next: string | undefined }> {
    const out = await this.#send(`list ${prefix}`, () => this.client.send(new ListObjectsV2Command({
      Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, ...(max ? { MaxKeys: max } : {}),
    })));
    return { keys: (out.Contents ?? []).map((c) => c.Key as string), next: out.IsTruncated ? out.NextContinuationToken : undefined };
  }

  list(blobId: string): Promise<number[]> {
    return this.#track(async () => {
      assertBlobId(blobId);
      const prefix = this.#blobPrefix(blobId);
      const out: number[] = [];
      let token: string | undefined;
      do {
        const page = await this.#listKeys(prefix, undefined, token);
        for (const k of page.keys) {
          const i = parseChunkName(k.slice(prefix.length));
          if (i !== null) out.push(i);
        }
        token = page.next;
      } while (token);
      return out.sort((a, b) => a - b);
    });
  }

  async *listBlobs(): AsyncIterable<string> {
    if (this.#closed) throw new CofferError(ErrorCode.UNAVAILABLE, 'the chunk store is closed');
    const root = `${this.prefix}chunks/`;
    const shape = /^[0-9a-f]{2}\/[0-9a-f]{2}\/([0-9a-f]{32})\/[0-9a-f]{8}$/;
    let last: string | undefined;
    let token: string | undefined;
    do {
      const page = await this.#track(() => this.#listKeys(root, undefined, token));
      for (const k of page.keys) {
        const m = shape.exec(k.slice(root.length));
        const blob = m?.[1];
        if (!blob || blob.slice(0, 2) !== k.slice(root.length, root.length + 2) || blob === last) continue;
        last = blob;
        yield blob;
      }
      token = page.next;
    } while (token);
  }

  sweepTemporary(olderThanMs: number): Promise<number> {
    return this.#track(async () => {
      assertSweepAge(olderThanMs);
      const cutoff = Date.now() - olderThanMs;
      let removed = 0;
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      for (;;) {
        const out = await this.#send('list multipart uploads', () => this.client.send(new ListMultipartUploadsCommand({
          Bucket: this.bucket, Prefix: `${this.prefix}chunks/`, KeyMarker, UploadIdMarker,
        })));
        for (const u of out.Uploads ?? []) {
          // an upload without an initiation time (some S3-compatible servers omit it) counts as old
          if (olderThanMs > 0 && (u.Initiated?.getTime() ?? 0) > cutoff) continue;
          await this.#send('abort multipart upload', () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })))
            .catch((e: unknown) => {
              if (!(e instanceof CofferError && e.code === ErrorCode.NOT_FOUND)) throw e;
            });
          removed++;
        }
        if (!out.IsTruncated) return removed;
        KeyMarker = out.NextKeyMarker;
        UploadIdMarker = out.NextUploadIdMarker;
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    this.client.destroy();
  }
}

/** Opens an S3 store and checks that its bucket answers (HeadBucket). Throws UNAVAILABLE (no such bucket, refused, unreachable), INVALID_ARGUMENT. */
export async function openS3ChunkStore(options: S3ChunkStoreOptions): Promise<S3ChunkStore> {
  const store = new S3ChunkStore(options);
  try {
    await store.client.send(new HeadBucketCommand({ Bucket: store.bucket })).catch((e: unknown) => {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404) {
        throw new CofferError(ErrorCode.UNAVAILABLE, `s3://${store.bucket}: the bucket does not exist`, { cause: e });
      }
      throw s3Error(e, 'open', `s3://${store.bucket}`);
    });
    return store;
  } catch (e) {
    await store.close();
    throw e;
  }
}
