// Download routes: manifests by blob id and by path, and sealed chunks with Range / ETag (docs/http-api.md).
import type { ServerResponse } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import type { Hono } from 'hono';
import { BufferPool, alignUp, alignedAllocator } from '../../buffer-pool.js';
import { MAX_SEALED_SIZE } from '../../crypto/index.js';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { Vault } from '../../vault/index.js';
import { indexParam, parseRange, query, type ApiEnv, type Ctx } from '../http.js';

// @hono/node-server's marker for a response the route wrote itself (see its utils/response RESPONSE_ALREADY_SENT)
const ALREADY_SENT = 'x-hono-already-sent';

/** Status and headers on Node's own response, with those set by middleware (request id) carried over. */
function startNodeResponse(c: Ctx, outgoing: ServerResponse, status: number, headers: Record<string, string>): void {
  c.res.headers.forEach((value, name) => outgoing.setHeader(name, value));
  for (const [name, value] of Object.entries(headers)) outgoing.setHeader(name, value);
  outgoing.statusCode = status;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === etag;
  });
}

export function downloadRoutes(app: Hono<ApiEnv>, vault: Vault, metrics: ServiceMetrics | undefined): void {
  app.get('/v1/blobs/:blobId', async (c) => c.json(await vault.manifestByBlob(c.var.actor, c.req.param('blobId'))));

  app.get('/v1/fs/manifest', async (c) => c.json(await vault.manifestByPath(c.var.actor, query(c, 'path'))));

  // Whole-chunk reads go through a few reused buffers: one read(2) into the buffer, one write to the socket, and
  // no 8 MiB allocation per request (docs/architecture.md, "Buffers on the bulk paths"). Aligned, with room for
  // a whole last block, so that a store writing with O_DIRECT can read that way too.
  const size = alignUp(MAX_SEALED_SIZE);
  const buffers = new BufferPool(size, 8, alignedAllocator(size, 8));
  app.get('/v1/blobs/:blobId/chunks/:index', async (c) => {
    const rangeHeader = c.req.header('range');
    const ifNoneMatch = c.req.header('if-none-match');
    const outgoing = c.env?.outgoing;
    const into = outgoing ? buffers.acquire() : undefined;
    let r;
    try {
      r = await vault.readChunk(c.var.actor, c.req.param('blobId'), indexParam(c), (info) => {
        if (etagMatches(ifNoneMatch, `"${info.sha256}"`)) return { skipBody: true };
        return { range: parseRange(rangeHeader, info.size), into };
      });
    } catch (e) {
      if (into) buffers.release(into);
      throw e;
    }
    if (into && !r.bytes) buffers.release(into);
    const headers: Record<string, string> = {
      'ETag': `"${r.sha256}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'private, no-cache',
    };
    if (!r.stream && !r.bytes) return c.body(null, 304, headers);
    headers['Content-Type'] = 'application/octet-stream';
    const status = r.range ? 206 : 200;
    if (r.range) {
      headers['Content-Range'] = `bytes ${r.range.start}-${r.range.end}/${r.size}`;
      headers['Content-Length'] = String(r.range.end - r.range.start + 1);
    } else {
      headers['Content-Length'] = String(r.size);
    }
    if (r.bytes && outgoing && into) {
      // One write of the whole chunk straight into Node's response. The buffer is reused after 'close': the
      // response finished (every byte handed to the kernel) or its connection was torn down (libuv cancels
      // pending writes before it reports the close), so nothing reads it any more either way.
      const bytes = r.bytes;
      startNodeResponse(c, outgoing, status, headers);
      outgoing.once('close', () => buffers.release(into));
      outgoing.end(bytes);
      metrics?.bytesOut.inc(bytes.length);
      return new Response(null, { status, headers: { [ALREADY_SENT]: 'true' } });
    }
    const stream = r.stream as Readable;
    stream.on('data', (chunk: Buffer) => metrics?.bytesOut.inc(chunk.length));
    if (!outgoing) return c.body(Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>, status, headers);
    // Range requests: pipe the file straight into Node's response. Going through a web ReadableStream costs
    // about half the throughput on 8 MiB chunks.
    startNodeResponse(c, outgoing, status, headers);
    pipeline(stream, outgoing, () => undefined); // a client that goes away just ends the stream
    return new Response(null, { status, headers: { [ALREADY_SENT]: 'true' } });
  });
}
