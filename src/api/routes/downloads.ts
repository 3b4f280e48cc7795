// Download routes: manifests by blob id and by path, and sealed chunks with Range / ETag (docs/http-api.md).
import { Readable, pipeline } from 'node:stream';
import type { Hono } from 'hono';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { Vault } from '../../vault/index.js';
import { indexParam, parseRange, query, type ApiEnv } from '../http.js';

// @hono/node-server's marker for a response the route wrote itself (see its utils/response RESPONSE_ALREADY_SENT)
const ALREADY_SENT = 'x-hono-already-sent';

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

  app.get('/v1/blobs/:blobId/chunks/:index', async (c) => {
    const rangeHeader = c.req.header('range');
    const ifNoneMatch = c.req.header('if-none-match');
    const r = await vault.readChunk(c.var.actor, c.req.param('blobId'), indexParam(c), (info) => {
      if (etagMatches(ifNoneMatch, `"${info.sha256}"`)) return { skipBody: true };
      return { range: parseRange(rangeHeader, info.size) };
    });
    const headers: Record<string, string> = {
      'ETag': `"${r.sha256}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'private, no-cache',
    };
    if (!r.stream) return c.body(null, 304, headers);
    headers['Content-Type'] = 'application/octet-stream';
    const status = r.range ? 206 : 200;
    if (r.range) {
      headers['Content-Range'] = `bytes ${r.range.start}-${r.range.end}/${r.size}`;
      headers['Content-Length'] = String(r.range.end - r.range.start + 1);
    } else {
      headers['Content-Length'] = String(r.size);
    }
    const stream = r.stream;
    stream.on('data', (chunk: Buffer) => metrics?.bytesOut.inc(chunk.length));
    const outgoing = c.env?.outgoing;
    if (!outgoing) return c.body(Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>, status, headers);
    // Fast path: pipe the file straight into Node's response. Going through a web ReadableStream costs about
    // half the throughput on 8 MiB chunks; the headers set by middleware (request id) are carried over.
    c.res.headers.forEach((value, name) => outgoing.setHeader(name, value));
    for (const [name, value] of Object.entries(headers)) outgoing.setHeader(name, value);
    outgoing.statusCode = status;
    pipeline(stream, outgoing, () => undefined); // a client that goes away just ends the stream
    return new Response(null, { status, headers: { [ALREADY_SENT]: 'true' } });
  });
}
