// Many small files in one request (docs/http-api.md "Many small files"): `POST /v1/files/batch` with the body
//   u32 big-endian J ‖ J bytes of JSON { "files": [ { …as POST /v1/files…, "sealedLength" } ] } ‖ the sealed chunks
// back to back in the order of "files". Answered per file: one bad or conflicting file fails alone.
// The sealed chunks are read into one of BATCHES_AT_ONCE buffers of BATCH_MAX_BYTES reused from batch to batch
// (buffer-pool.ts says why a fresh 8 MiB buffer per request costs), given back once the batch is stored.
import type { Hono } from 'hono';
import { BufferPool } from '../../buffer-pool.js';
import { CofferError, ErrorCode } from '../../errors.js';
import type { KeyRecord } from '../../metadata/types.js';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { Vault } from '../../vault/index.js';
import pLimit from 'p-limit';
import { BATCH_MAX_BYTES, BATCH_MAX_FILES, BATCHES_AT_ONCE, type BatchFile } from '../../vault/small-file-batch.js';
import { FILE_BATCH_MEDIA_TYPE, FRAME_PREFIX, readFrameHead } from '../framed-body.js';
import { errorResponse, field, jsonObjectFrom, type ApiEnv } from '../http.js';
import { counted } from './uploads.js';

const FILE_FIELDS = ['path', 'blobId', 'keyGeneration', 'keyRecord', 'size', 'overwrite', 'source', 'binding', 'sealedLength'] as const;
/** JSON part of a batch: 1,000 entries of about 1 KiB (a key record is a few hundred bytes) fit several times. */
const MAX_BATCH_JSON = 4 * 1024 * 1024;

export function fileBatchRoutes(app: Hono<ApiEnv>, vault: Vault, metrics: ServiceMetrics | undefined): void {
  // memory bound: at most BATCHES_AT_ONCE bodies held at once in this process, whatever the number of clients
  const atOnce = pLimit(BATCHES_AT_ONCE);
  const bodies = new BufferPool(BATCH_MAX_BYTES, BATCHES_AT_ONCE);
  app.post('/v1/files/batch', (c) => atOnce(async () => {
    const type = c.req.header('content-type') ?? '';
    if (type.split(';')[0]?.trim().toLowerCase() !== FILE_BATCH_MEDIA_TYPE) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `Content-Type must be ${FILE_BATCH_MEDIA_TYPE}`);
    }
    const lengthHeader = c.req.header('content-length');
    if (lengthHeader === undefined || !/^\d{1,32}$/.test(lengthHeader)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Length is required (no chunked transfer encoding)');
    }
    const length = Number(lengthHeader);
    if (length > FRAME_PREFIX + MAX_BATCH_JSON + BATCH_MAX_BYTES) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, 'body larger than a batch');
    const { json, rest, jsonLength } = await readFrameHead(c.env.incoming as AsyncIterable<Uint8Array>, MAX_BATCH_JSON);
    const body = jsonObjectFrom(json, ['files']);
    const entries = body.files;
    if (!Array.isArray(entries) || entries.length === 0 || entries.length > BATCH_MAX_FILES) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `"files" must be an array of 1..${BATCH_MAX_FILES} entries`);
    }
    // the framing first: every entry's sealedLength must be readable, and they must add up to the body
    const lengths = entries.map((e: unknown, i) => {
      const v = typeof e === 'object' && e !== null ? (e as Record<string, unknown>).sealedLength : undefined;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `files[${i}].sealedLength must be a non-negative integer`);
      return v;
    });
    const sealedTotal = lengths.reduce((a, b) => a + b, 0);
    if (sealedTotal > BATCH_MAX_BYTES) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `a batch holds at most ${BATCH_MAX_BYTES} bytes of sealed chunks`);
    if (length !== FRAME_PREFIX + jsonLength + sealedTotal) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Length disagrees with the sum of sealedLength');
    const into = bodies.acquire();
    let reusable = true;
    try {
      const sealed = await readExactly(counted(rest, metrics), sealedTotal, into);
      const parsed: Array<BatchFile | CofferError> = [];
      let at = 0;
      for (const [i, e] of entries.entries()) {
        const bytes = sealed.subarray(at, at + (lengths[i] as number));
        at += lengths[i] as number;
        try {
          const o = jsonObjectFrom(Buffer.from(JSON.stringify(e)), FILE_FIELDS);
          parsed.push({
            input: {
              path: field.string(o, 'path'), blobId: field.string(o, 'blobId'), keyGeneration: field.int(o, 'keyGeneration'),
              keyRecord: o.keyRecord as KeyRecord, size: field.int(o, 'size'), overwrite: field.optBool(o, 'overwrite'),
              source: field.optString(o, 'source'), binding: field.optString(o, 'binding'),
            },
            sealed: bytes,
          });
        } catch (err) {
          if (!(err instanceof CofferError)) throw err;
          parsed.push(err);
        }
      }
      const good = parsed.flatMap((p, i) => (p instanceof CofferError ? [] : [{ i, file: p }]));
      reusable = false;
      const answers = good.length === 0 ? [] : await vault.putSmallFiles(c.var.actor, good.map((g) => g.file));
      reusable = true;
      const results: unknown[] = parsed.map((p) => (p instanceof CofferError ? { error: errorResponse(p).body.error } : null));
      good.forEach((g, k) => {
        const r = answers[k]!;
        results[g.i] = r.ok ? { node: r.node, manifest: r.manifest, repeated: r.repeated } : { error: errorResponse(r.error).body.error };
      });
      return c.json({ results }, 200);
    } finally {
      // after a failure of the vault call its fate is unknown (a pack write may still hold it): not reused
      if (reusable) bodies.release(into);
    }
  }));
}

/** Reads exactly `n` bytes into the start of `into`. Throws INVALID_ARGUMENT if the stream ends first or runs on. */
async function readExactly(source: AsyncIterable<Uint8Array>, n: number, into: Buffer): Promise<Buffer> {
  const out = into.subarray(0, n);
  let have = 0;
  for await (const part of source) {
    if (have + part.byteLength > n) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the body is longer than its Content-Length');
    out.set(part, have);
    have += part.byteLength;
  }
  if (have !== n) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the body ended before its sealed chunks did');
  return out;
}
