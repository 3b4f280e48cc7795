// One-request small files (docs/http-api.md "Small files"): `POST /v1/files` creates, stores and commits a
// one-chunk file; `GET /v1/fs/file` answers a file's node, manifest and (one chunk) sealed bytes together;
// `POST /v1/fs/files/read` answers many files so, one framed record after another, streamed as they are read.
// The bodies are framed (framed-body.ts): u32 J ‖ JSON ‖ sealed chunk.
import type { Hono } from 'hono';
import { CofferError, ErrorCode, httpStatusOf } from '../../errors.js';
import { MAX_SEALED_SIZE, sealedSize } from '../../crypto/index.js';
import type { KeyRecord } from '../../metadata/types.js';
import type { ServiceMetrics } from '../../telemetry/index.js';
import { MAX_BATCH_READ, type Vault } from '../../vault/index.js';
import { FILES_MEDIA_TYPE, FILE_MEDIA_TYPE, FRAME_PREFIX, frameHead, readFrameHead } from '../framed-body.js';
import { MAX_JSON_BYTES, field, jsonObjectFrom, query, readJson, type ApiEnv } from '../http.js';
import { YoungGarbagePacer } from '../../young-garbage.js';
import { counted } from './uploads.js';
import { BufferPool } from '../../buffer-pool.js';
import { LentBuffers } from '../lent-buffers.js';

/** A pooled buffer holds a sealed chunk of up to 32 KiB of plaintext; at most 512 of them (16 MiB) are kept. */
export const SEALED_BUFFER_SIZE = sealedSize(32 * 1024);
export const SEALED_BUFFERS_KEPT = 512;

const FIELDS = ['path', 'blobId', 'keyGeneration', 'keyRecord', 'size', 'overwrite', 'source', 'binding'] as const;

/** A batch read's small records are sent in writes of about this size (docs/http-api.md). */
const GATHER_BYTES = 64 * 1024;

// @hono/node-server's marker for a response the route wrote itself (as in downloads.ts)
const ALREADY_SENT = 'x-hono-already-sent';

export function fileRoutes(app: Hono<ApiEnv>, vault: Vault, metrics: ServiceMetrics | undefined): void {
  // Each file read here was a fresh off-heap buffer (its sealed chunk, read from its pack) held by a small object
  // V8 had no hurry to collect: the service's ArrayBuffers grew to 230–280 MiB during one get -r of 10,000–30,000
  // files of 16 KiB (docs/benchmarks.md, "Memory at 100,000 files"). The batch read now reads chunks of files up
  // to 32 KiB into lent pool buffers; for what is still fresh (a single file's GET, larger files, the records'
  // heads) a minor collection every 32 MiB sent frees the dead buffers while they are few (src/young-garbage.ts).
  const youngGarbage = new YoungGarbagePacer();
  // buffers for the batch read's sealed chunks (files up to 32 KiB; larger ones get their own): 3 batches in
  // flight from a `get -r` of 128 files each fit in the buffers kept
  const sealedBuffers = new BufferPool(SEALED_BUFFER_SIZE, SEALED_BUFFERS_KEPT);
  app.post('/v1/files', async (c) => {
    const type = c.req.header('content-type') ?? '';
    if (type.split(';')[0]?.trim().toLowerCase() !== FILE_MEDIA_TYPE) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `Content-Type must be ${FILE_MEDIA_TYPE}`);
    }
    const lengthHeader = c.req.header('content-length');
    if (lengthHeader === undefined || !/^\d{1,32}$/.test(lengthHeader)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Length is required (no chunked transfer encoding)');
    }
    const length = Number(lengthHeader);
    if (length > FRAME_PREFIX + MAX_JSON_BYTES + MAX_SEALED_SIZE) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, 'body larger than a one-chunk file');
    const incoming = c.env.incoming as AsyncIterable<Uint8Array>;
    const { json, rest, jsonLength } = await readFrameHead(incoming, MAX_JSON_BYTES);
    const sealedLength = length - FRAME_PREFIX - jsonLength;
    if (sealedLength < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Length is shorter than the JSON part');
    const b = jsonObjectFrom(json, FIELDS);
    const size = field.int(b, 'size');
    const r = await vault.putSmallFile(c.var.actor, {
      path: field.string(b, 'path'),
      blobId: field.string(b, 'blobId'),
      keyGeneration: field.int(b, 'keyGeneration'),
      keyRecord: b.keyRecord as KeyRecord,
      size,
      overwrite: field.optBool(b, 'overwrite'),
      source: field.optString(b, 'source'),
      binding: field.optString(b, 'binding'),
    }, counted(rest, metrics), sealedLength);
    return c.json({ node: r.node, manifest: r.manifest }, r.repeated ? 200 : 201);
  });

  app.get('/v1/fs/file', async (c) => {
    const r = await vault.getSmallFile(c.var.actor, query(c, 'path'));
    const head = frameHead({ node: r.node, manifest: r.manifest });
    const total = head.length + (r.sealed?.length ?? 0);
    metrics?.bytesOut.inc(total);
    youngGarbage.moved(total);
    const outgoing = c.env?.outgoing;
    const headers = { 'Content-Type': FILE_MEDIA_TYPE, 'Content-Length': String(total), 'Cache-Control': 'private, no-cache' };
    if (!outgoing) return c.body(new Uint8Array(r.sealed ? Buffer.concat([head, r.sealed]) : head), 200, headers);
    // two writes, no concatenation (Node sends the head with the first)
    c.res.headers.forEach((value, name) => outgoing.setHeader(name, value));
    for (const [name, value] of Object.entries(headers)) outgoing.setHeader(name, value);
    outgoing.statusCode = 200;
    if (r.sealed) outgoing.write(head);
    outgoing.end(r.sealed ?? head);
    return new Response(null, { status: 200, headers: { [ALREADY_SENT]: 'true' } });
  });

  app.post('/v1/fs/files/read', async (c) => {
    const b = await readJson(c, ['paths']);
    const paths = b.paths;
    if (!Array.isArray(paths) || paths.length === 0 || paths.length > MAX_BATCH_READ || !paths.every((p) => typeof p === 'string')) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `"paths" must be a list of 1..${MAX_BATCH_READ} paths`);
    }
    // sealed chunks read into buffers lent by the pool, given back once the answer is sent (lent-buffers.ts)
    const outgoing = c.env?.outgoing;
    const lent = outgoing ? new LentBuffers(sealedBuffers) : null;
    outgoing?.once('close', () => lent?.responseClosed());
    const items = vault.readSmallFiles(c.var.actor, paths as string[], lent?.bufferFor);
    let count = 0;
    // pulled as the socket drains, never the whole answer in memory; small records are gathered into one write of
    // up to GATHER_BYTES (one write, and one pull of this stream, per record cost more than the record itself)
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const parts: Uint8Array[] = [];
        let gathered = 0;
        const flush = (): void => {
          if (parts.length > 0) controller.enqueue(parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, gathered));
          parts.length = 0;
          gathered = 0;
        };
        const add = (b: Uint8Array): void => {
          if (b.length > GATHER_BYTES) {
            flush();
            controller.enqueue(b);
            return;
          }
          parts.push(b);
          gathered += b.length;
        };
        while (gathered < GATHER_BYTES) {
          let r: Awaited<ReturnType<typeof items.next>>;
          try {
            r = await items.next();
          } catch (e) {
            lent?.readerDone(); // a generator that threw is finished, the reads it started settled
            controller.error(e); // the client sees a cut answer (no end record) and fails the batch
            return;
          }
          try {
            if (r.done) {
              lent?.readerDone();
              add(frameHead({ end: true, count }));
              flush();
              controller.close();
              return;
            }
            count++;
            const item = r.value;
            if ('error' in item) {
              add(frameHead({ path: item.path, error: { code: item.error.code, message: item.error.message }, status: httpStatusOf[item.error.code] }));
              continue;
            }
            const sealed = item.read.sealed;
            const head = frameHead({ path: item.path, node: item.read.node, manifest: item.read.manifest, sealedLength: sealed?.length ?? 0 });
            metrics?.bytesOut.inc(head.length + (sealed?.length ?? 0));
            add(head);
            if (sealed) {
              add(sealed);
              youngGarbage.moved(sealed.length);
            }
          } catch (e) {
            // the stream was cancelled meanwhile (enqueue refuses): cancel() ends the reads and gives the buffers back
            controller.error(e);
            return;
          }
        }
        try {
          flush();
        } catch (e) {
          controller.error(e); // cancelled meanwhile, as above
        }
      },
      async cancel() {
        await items.return(undefined); // settles the reads it started
        lent?.readerDone();
      },
    }, { highWaterMark: 0 });
    return new Response(body, { status: 200, headers: { 'Content-Type': FILES_MEDIA_TYPE, 'Cache-Control': 'private, no-cache' } });
  });
}
