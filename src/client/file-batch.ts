// The client's reading of a batch read's answer (`POST /v1/fs/files/read`, docs/http-api.md "Many small files in
// one request"): framed records `u32 J ‖ J bytes of JSON ‖ sealedLength bytes`, one per path asked, in the order
// asked, then an end record `{ "end": true, "count": n }`. Read as it arrives, one record at a time, so memory
// stays flat whatever the batch. Nothing here is trusted: every length is bounded before a byte is held, the
// records must name exactly the paths asked, in order, and a cut answer (no end record) fails; the chunk
// itself is authenticated by the caller (small-file.ts openFileAnswer), as for a single file.
import type { IncomingMessage } from 'node:http';
import { MAX_SEALED_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { errorFromResponse } from './http-errors.js';
import type { Manifest, NodeInfo } from './vault-client.js';

export const FILES_MEDIA_TYPE = 'application/vnd.coffer.files+v1';
/** The most paths the service takes in one batch read (MAX_BATCH_READ in src/vault/small-files.ts). */
export const MAX_BATCH_READ = 256;
/** A record's JSON part: a node and a one-chunk manifest with a key record (≤ 16 KiB); generous. */
const MAX_RECORD_JSON = 1024 * 1024;

/** One file of a batch: what `GET /v1/fs/file` answers for it, or the error the service gave for it alone. */
export type FileAnswer =
  | { path: string; node: NodeInfo; manifest: Manifest; sealed: Buffer | null; error?: undefined }
  | { path: string; error: CofferError };

/** Reads exact byte counts from a response as it arrives. */
class ByteReader {
  readonly #it: AsyncIterator<Buffer>;
  #parts: Buffer[] = [];
  #have = 0;

  constructor(res: AsyncIterable<Buffer>) {
    this.#it = res[Symbol.asyncIterator]();
  }

  /** The next `n` bytes, or null at a clean end (nothing buffered). Throws INTEGRITY when the body ends inside them. */
  async read(n: number): Promise<Buffer | null> {
    while (this.#have < n) {
      const r = await this.#it.next().catch((e: unknown) => {
        throw new CofferError(ErrorCode.UNAVAILABLE, `the batch read answer was cut: ${(e as Error).message}`, { cause: e, retryable: true });
      });
      if (r.done) {
        if (this.#have === 0) return null;
        throw bad('the answer ends inside a record');
      }
      this.#parts.push(r.value);
      this.#have += r.value.length;
    }
    if (n === 0) return Buffer.alloc(0);
    this.#have -= n;
    const first = this.#parts[0] as Buffer;
    if (first.length >= n) {
      // inside one piece received: a view, no copy
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    // across pieces: only these n bytes are copied (the rest of the last piece stays a view)
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const part = this.#parts[0] as Buffer;
      const take = Math.min(part.length, n - at);
      part.copy(out, at, 0, take);
      at += take;
      if (take === part.length) this.#parts.shift();
      else this.#parts[0] = part.subarray(take);
    }
    return out;
  }
}

function bad(m: string): CofferError {
  return new CofferError(ErrorCode.INTEGRITY, `malformed batch read answer: ${m}`);
}

async function record(reader: ByteReader): Promise<{ json: Record<string, unknown>; reader: ByteReader }> {
  const prefix = await reader.read(4);
  if (!prefix) throw bad('it ends before its end record (cut short)');
  const j = prefix.readUInt32BE(0);
  if (j > MAX_RECORD_JSON) throw bad(`a JSON part of ${j} bytes`);
  const bytes = (await reader.read(j)) ?? Buffer.alloc(0);
  if (bytes.length !== j) throw bad('the answer ends inside a record');
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad('a JSON part is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('a JSON part is not an object');
  return { json: value as Record<string, unknown>, reader };
}

/**
 * Yields one FileAnswer per path of `paths`, in order, from a batch read's response. Throws INTEGRITY for an
 * answer that is not one (wrong media type, a record for another path, a length over one sealed chunk, no end
 * record or a wrong count, bytes after it). Destroys the response when the caller stops early.
 */
export async function* readFileAnswers(res: IncomingMessage, paths: readonly string[]): AsyncGenerator<FileAnswer> {
  let complete = false;
  try {
    const type = String(res.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== FILES_MEDIA_TYPE) throw bad(`Content-Type ${type ?? 'missing'}`);
    const reader = new ByteReader(res);
    for (const asked of paths) {
      const { json } = await record(reader);
      if (json.path !== asked) throw bad(`a record for ${JSON.stringify(json.path)} where ${JSON.stringify(asked)} was expected`);
      if (json.error !== undefined) {
        const status = typeof json.status === 'number' ? json.status : 500;
        yield { path: asked, error: errorFromResponse(status, JSON.stringify({ error: json.error })) };
        continue;
      }
      const node = json.node as NodeInfo | undefined;
      const manifest = json.manifest as Manifest | undefined;
      const n = json.sealedLength;
      if (typeof node !== 'object' || node === null || typeof manifest !== 'object' || manifest === null) throw bad(`no node or manifest for ${asked}`);
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > MAX_SEALED_SIZE) throw bad(`a sealed length of ${String(n)} for ${asked}`);
      if (node.path !== asked) throw bad(`the node for ${asked} is ${JSON.stringify(node.path)}`);
      const sealed = n === 0 ? null : await reader.read(n);
      if (n > 0 && sealed?.length !== n) throw bad('the answer ends inside a record');
      // a view, not a copy: it may share a received piece with the next records, which stays alive until the
      // caller has opened it (get -r opens each answer as it takes it: at most its writers' count are held)
      yield { path: asked, node, manifest, sealed };
    }
    const { json } = await record(reader);
    if (json.end !== true || json.count !== paths.length) throw bad(`its end record says ${JSON.stringify(json)} for ${paths.length} paths`);
    if ((await reader.read(1)) !== null) throw bad('bytes after its end record');
    complete = true;
  } finally {
    if (!complete) res.destroy();
  }
}
