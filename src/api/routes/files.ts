// One-request small files (docs/http-api.md "Small files"): `POST /v1/files` creates, stores and commits a
// one-chunk file; `GET /v1/fs/file` answers a file's node, manifest and (one chunk) sealed bytes together.
// Both bodies are framed (framed-body.ts): u32 J ‖ JSON ‖ sealed chunk.
import type { Hono } from 'hono';
import { CofferError, ErrorCode } from '../../errors.js';
import { MAX_SEALED_SIZE } from '../../crypto/index.js';
import type { KeyRecord } from '../../metadata/types.js';
import type { ServiceMetrics } from '../../telemetry/index.js';
import type { Vault } from '../../vault/index.js';
import { FILE_MEDIA_TYPE, FRAME_PREFIX, frameHead, readFrameHead } from '../framed-body.js';
import { MAX_JSON_BYTES, field, jsonObjectFrom, query, type ApiEnv } from '../http.js';
import { counted } from './uploads.js';

const FIELDS = ['path', 'blobId', 'keyGeneration', 'keyRecord', 'size', 'overwrite', 'source', 'binding'] as const;

// @hono/node-server's marker for a response the route wrote itself (as in downloads.ts)
const ALREADY_SENT = 'x-hono-already-sent';

export function fileRoutes(app: Hono<ApiEnv>, vault: Vault, metrics: ServiceMetrics | undefined): void {
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
}
