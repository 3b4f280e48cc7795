// Upload routes: create, state, raw chunk PUT, multipart chunk POST, commit, abort (docs/http-api.md "Uploads").
// Chunk bodies stream from the Node request straight into the vault (and on into the chunk store): never
// buffered whole; Content-Length is required and bounded before a byte is read.
import { performance } from 'node:perf_hooks';
import type { Hono } from 'hono';
import { CofferError, ErrorCode, toCofferError } from '../../errors.js';
import { MAX_SEALED_SIZE } from '../../crypto/index.js';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { KeyRecord } from '../../metadata/types.js';
import type { UploadChunkView, Vault } from '../../vault/index.js';
import { field, indexParam, readJson, type ApiEnv } from '../http.js';
import { readMultipart } from '../multipart.js';
import { YoungGarbagePacer } from '../../young-garbage.js';

export interface UploadRouteOptions {
  maxMultipartParts: number;
}

/** A request body counted into bytesIn; a body that ends early is the client's INVALID_ARGUMENT. */
export async function* counted(body: AsyncIterable<Uint8Array>, metrics: ServiceMetrics | undefined): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) {
      metrics?.bytesIn.inc(chunk.length);
      yield chunk;
    }
  } catch (e) {
    // the client hung up mid-body (Node: "aborted", ECONNRESET): the client's doing, a 4xx in logs and metrics,
    // not a 500 that pages someone. Nothing was stored (the chunk store removes its temporary file).
    if (e instanceof CofferError) throw e;
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `the request body ended early: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

async function timedPut(metrics: ServiceMetrics | undefined, put: () => Promise<UploadChunkView>): Promise<UploadChunkView> {
  const t0 = performance.now();
  try {
    const r = await put();
    metrics?.chunkWrites.inc({ result: 'ok' });
    metrics?.chunkPutDuration.observe((performance.now() - t0) / 1000);
    return r;
  } catch (e) {
    metrics?.chunkWrites.inc({ result: toCofferError(e).code });
    throw e;
  }
}

export function uploadRoutes(app: Hono<ApiEnv>, vault: Vault, metrics: ServiceMetrics | undefined, options: UploadRouteOptions): void {
  // the socket's dead read buffers of the chunk bodies, freed every 32 MiB received (src/young-garbage.ts)
  const youngGarbage = new YoungGarbagePacer();
  app.post('/v1/uploads', async (c) => {
    const b = await readJson(c, ['path', 'blobId', 'keyGeneration', 'keyRecord', 'size', 'overwrite', 'source', 'binding']);
    const view = await vault.createUpload(c.var.actor, {
      path: field.string(b, 'path'),
      blobId: field.string(b, 'blobId'),
      keyGeneration: field.int(b, 'keyGeneration'),
      keyRecord: b.keyRecord as KeyRecord,
      size: field.optInt(b, 'size'),
      overwrite: field.optBool(b, 'overwrite'),
      source: field.optString(b, 'source'),
      binding: field.optString(b, 'binding'),
    });
    return c.json(view, 201);
  });

  app.get('/v1/uploads/:blobId', async (c) => c.json(await vault.getUpload(c.var.actor, c.req.param('blobId'))));

  app.put('/v1/uploads/:blobId/chunks/:index', async (c) => {
    const blobId = c.req.param('blobId');
    const index = indexParam(c);
    const lengthHeader = c.req.header('content-length');
    if (lengthHeader === undefined || !/^\d{1,32}$/.test(lengthHeader)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Length is required (no chunked transfer encoding)');
    }
    const length = Number(lengthHeader);
    if (length > MAX_SEALED_SIZE) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `a sealed chunk is at most ${MAX_SEALED_SIZE} bytes`);
    const view = await timedPut(metrics, () => vault.putChunk(c.var.actor, blobId, index, counted(c.env.incoming, metrics), length));
    youngGarbage.moved(length);
    return c.json(view);
  });

  // the owner reads back a chunk of its own upload in progress (the enclave's S3 multipart: docs/http-api.md);
  // a fresh buffer per answer, since the body is sent after the handler returns
  app.get('/v1/uploads/:blobId/chunks/:index', async (c) => {
    const bytes = await vault.readUploadChunk(c.var.actor, c.req.param('blobId'), indexParam(c), Buffer.allocUnsafe(MAX_SEALED_SIZE));
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
  });

  app.post('/v1/uploads/:blobId/chunks', async (c) => {
    const blobId = c.req.param('blobId');
    if (!/^multipart\/form-data\s*;/i.test(c.req.header('content-type') ?? '')) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Type must be multipart/form-data');
    }
    const declared = Number(c.req.header('content-length') ?? '0');
    if (declared > options.maxMultipartParts * (MAX_SEALED_SIZE + 16 * 1024)) {
      throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, 'multipart body too large');
    }
    const chunks: UploadChunkView[] = [];
    await readMultipart(c.env.incoming, { maxParts: options.maxMultipartParts, maxPartBytes: MAX_SEALED_SIZE }, async (name, bytes) => {
      if (!/^(?:0|[1-9]\d{0,9})$/.test(name) || Number(name) > 0xffff_ffff) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, `multipart part name "${name}" is not a chunk index`);
      }
      chunks.push(await timedPut(metrics, () => vault.putChunk(c.var.actor, blobId, Number(name), counted(bytes, metrics))));
    });
    // a body whose parts were all unusable (no Content-Disposition, none at all) did nothing: say so
    if (chunks.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the multipart body holds no chunk part');
    return c.json({ chunks });
  });

  app.post('/v1/uploads/:blobId/commit', async (c) => {
    const b = await readJson(c, ['chunkCount', 'size']);
    const r = await vault.commitUpload(c.var.actor, c.req.param('blobId'), { chunkCount: field.int(b, 'chunkCount'), size: field.int(b, 'size') });
    return c.json(r);
  });

  app.delete('/v1/uploads/:blobId', async (c) => c.json(await vault.abortUpload(c.var.actor, c.req.param('blobId'))));
}
