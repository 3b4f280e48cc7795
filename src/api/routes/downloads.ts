// Download routes: manifests by blob id and by path, and sealed chunks with Range / ETag (docs/http-api.md).
import { Readable, Transform } from 'node:stream';
import type { Hono } from 'hono';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { Vault } from '../../vault/index.js';
import { indexParam, parseRange, query, type ApiEnv } from '../http.js';

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
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        metrics?.bytesOut.inc(chunk.length);
        cb(null, chunk);
      },
    });
    r.stream.on('error', (e) => counter.destroy(e));
    r.stream.pipe(counter);
    const body = Readable.toWeb(counter) as unknown as ReadableStream<Uint8Array>;
    headers['Content-Type'] = 'application/octet-stream';
    if (r.range) {
      headers['Content-Range'] = `bytes ${r.range.start}-${r.range.end}/${r.size}`;
      headers['Content-Length'] = String(r.range.end - r.range.start + 1);
      return c.body(body, 206, headers);
    }
    headers['Content-Length'] = String(r.size);
    return c.body(body, 200, headers);
  });
}
