// The gateway's plaintext HTTP API (hono), served over TLS that ends inside the enclave (docs/enclave-gateway.md):
//   GET  /healthz, /readyz, /metrics    liveness; readiness (storage service and KMS reachable through the
//                                       channel); Prometheus text (metrics.ts: counts and latencies only)
//   GET  /v1/attestation?nonce=HEX      a fresh attestation document (CBOR) binding the TLS certificate's key
//   PUT  /v1/files/<path>               raw body, streamed and sealed (If-None-Match: * → never replace)
//   POST /v1/files/<dir>                multipart/form-data: every file part stored as <dir>/<its filename>
//   GET|HEAD /v1/files/<path>           Range, If-None-Match / If-Match / If-Modified-Since / If-Range
//   DELETE /v1/files/<path>             remove (?recursive=true for a directory tree)
//   /v1/whoami, /v1/fs/{stat,list,mkdir,move,remove,copy}, /v1/grants  — the storage service's JSON shapes, so
//   existing clients' tree operations work unchanged against the gateway.
//   POST /v1/users/disabled {user, disabled}  token admins: disable / enable a user, the status MACed in the enclave
// Tokens are verified here, inside the enclave, before anything reaches the storage service.
import type { HttpBindings } from '@hono/node-server';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { performance } from 'node:perf_hooks';
import { Hono, type Context } from 'hono';
import { routePath } from 'hono/route';
import { errorResponse, field, flag, optionalQuery, parseRange, query, readJson, type Ctx } from '../../src/api/http.js';
import { discardUnreadBody } from '../../src/api/linger.js';
import type { Authenticator } from '../../src/api/auth/index.js';
import { CofferError, ErrorCode, toCofferError } from '../../src/errors.js';
import type { Logger } from '../../src/telemetry/index.js';
import type { Caller, FileOps } from './files.js';
import type { GatewayMetrics } from './metrics.js';
import { sendBody } from './send-body.js';

export type GatewayEnv = { Bindings: HttpBindings; Variables: { caller: Caller } };
type GCtx = Context<GatewayEnv>;

export interface GatewayAppDeps {
  files: FileOps;
  auth: Authenticator;
  /** A fresh attestation document binding the TLS key, with the caller's nonce. */
  attest(nonce: Uint8Array): Promise<Uint8Array>;
  /** Resolves when the gateway can serve (storage service and KMS answer through the channel); throws UNAVAILABLE. */
  ready?: () => Promise<void>;
  metrics?: GatewayMetrics;
  logger?: Logger;
}

const ALREADY_SENT = 'x-hono-already-sent';
const MAX_NONCE_BYTES = 512;
/** How long /readyz waits before it answers 503. */
const READY_TIMEOUT_MS = 2_000;

const h = (c: GCtx): Ctx => c as unknown as Ctx;

function bad(message: string): CofferError {
  return new CofferError(ErrorCode.INVALID_ARGUMENT, message);
}

/** The vault path named by /v1/files/<path>: percent-decoded strictly, segment by segment. Throws INVALID_PATH. */
export function filePathOf(url: string): string {
  const pathname = new URL(url).pathname;
  const rest = pathname.slice('/v1/files'.length);
  if (rest === '' || rest === '/') return '/';
  try {
    const decoded = rest.split('/').map((s) => decodeURIComponent(s)).join('/');
    return decoded.length > 1 && decoded.endsWith('/') ? decoded.slice(0, -1) : decoded;
  } catch (_e) {
    throw new CofferError(ErrorCode.INVALID_PATH, 'the path is not valid percent-encoded UTF-8');
  }
}

async function sendError(c: GCtx, e: unknown, logger?: Logger): Promise<Response> {
  const { status, body, error } = errorResponse(e);
  if (status >= 500) logger?.error({ err: error }, 'gateway request failed');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (status === 503) headers['retry-after'] = '1';
  if (error.code === ErrorCode.RANGE_NOT_SATISFIABLE && typeof error.details?.size === 'number') headers['content-range'] = `bytes */${error.details.size}`;
  const incoming = c.env?.incoming;
  if (incoming && !incoming.readableEnded && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
    // Do not reuse the connection, and read the rest of the body first (bounded: linger.ts), so that a client
    // still sending it gets this answer rather than a reset. A 503 is lingered on even when no byte was read
    // (the KMS down before the first chunk): the client must see its Retry-After to retry.
    headers.connection = 'close';
    await discardUnreadBody(incoming, { unreadToo: status === 503 });
  }
  return new Response(JSON.stringify(body), { status, headers });
}

export function createGatewayApp(deps: GatewayAppDeps): Hono<GatewayEnv> {
  const { files, auth, metrics } = deps;
  const app = new Hono<GatewayEnv>();
  app.onError((e, c) => sendError(c, e, deps.logger));
  app.notFound((c) => sendError(c, new CofferError(ErrorCode.NOT_FOUND, `no route ${c.req.method} ${new URL(c.req.url).pathname}`)));

  if (metrics) {
    app.use('*', async (c, next) => {
      const t0 = performance.now();
      await next();
      const route = routePath(c, -1);
      const label = route.endsWith('*') && !route.startsWith('/v1/files') ? 'unmatched' : route;
      metrics.httpRequests.inc({ method: c.req.method, route: label, status: String(c.res.status) });
      metrics.httpDuration.observe({ method: c.req.method, route: label }, (performance.now() - t0) / 1000);
    });
  }

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (deps.ready) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CofferError(ErrorCode.UNAVAILABLE, `not ready within ${READY_TIMEOUT_MS} ms`, { retryable: true })), READY_TIMEOUT_MS);
      });
      try {
        await Promise.race([deps.ready(), late]);
      } finally {
        clearTimeout(timer);
      }
    }
    return c.json({ status: 'ready' });
  });
  app.get('/metrics', async (c) => {
    if (!metrics) throw new CofferError(ErrorCode.NOT_FOUND, 'metrics are disabled');
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });

  app.get('/v1/attestation', async (c) => {
    const hex = optionalQuery(h(c), 'nonce') ?? '';
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex) || hex.length / 2 > MAX_NONCE_BYTES) throw bad(`nonce must be 1..${MAX_NONCE_BYTES} bytes in hex`);
    const doc = await deps.attest(new Uint8Array(Buffer.from(hex, 'hex')));
    return c.body(doc as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/cbor', 'cache-control': 'no-store' });
  });

  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization');
    const actor = await auth.authenticate(header);
    c.set('caller', { user: actor.user, admin: actor.admin, token: (header as string).slice('Bearer '.length) });
    await next();
  });

  app.get('/v1/whoami', async (c) => c.json(await files.whoami(c.var.caller)));
  app.post('/v1/users/disabled', async (c) => {
    const b = await readJson(h(c), ['user', 'disabled']);
    const disabled = field.optBool(b, 'disabled');
    if (disabled === undefined) throw bad('disabled (true or false) is required');
    const r = await files.setUserDisabled(c.var.caller, field.string(b, 'user'), disabled);
    return c.json({ name: r.user, disabled: r.disabled }); // the storage service's answer shape (`coffer users disable`)
  });
  app.get('/v1/fs/stat', async (c) => c.json(await files.stat(c.var.caller, query(h(c), 'path'))));
  app.get('/v1/fs/list', async (c) => {
    const limit = optionalQuery(h(c), 'limit');
    if (limit !== undefined && !/^[1-9]\d{0,3}$/.test(limit)) throw bad('limit must be 1..1000');
    return c.json(await files.list(c.var.caller, query(h(c), 'path'), { after: optionalQuery(h(c), 'after'), ...(limit ? { limit: Number(limit) } : {}) }));
  });
  app.post('/v1/fs/mkdir', async (c) => {
    const b = await readJson(h(c), ['path', 'parents']);
    return c.json(await files.mkdir(c.var.caller, field.string(b, 'path'), field.optBool(b, 'parents') ?? false), 201);
  });
  app.post('/v1/fs/move', async (c) => {
    const b = await readJson(h(c), ['from', 'to', 'overwrite']);
    return c.json(await files.move(c.var.caller, field.string(b, 'from'), field.string(b, 'to'), field.optBool(b, 'overwrite') ?? false));
  });
  app.post('/v1/fs/remove', async (c) => {
    const b = await readJson(h(c), ['path', 'recursive']);
    return c.json(await files.remove(c.var.caller, field.string(b, 'path'), field.optBool(b, 'recursive') ?? false));
  });
  app.post('/v1/fs/copy', async (c) => {
    const b = await readJson(h(c), ['from', 'to', 'overwrite']);
    const r = await files.copy(c.var.caller, field.string(b, 'from'), field.string(b, 'to'), field.optBool(b, 'overwrite') ?? false);
    return c.json(r.node, 201);
  });
  app.get('/v1/grants', async (c) => c.json({ grants: await files.grants(c.var.caller, query(h(c), 'path')) }));
  app.put('/v1/grants', async (c) => {
    const b = await readJson(h(c), ['path', 'user', 'role']);
    return c.json(await files.putGrant(c.var.caller, field.string(b, 'path'), field.string(b, 'user'), field.string(b, 'role')));
  });
  app.delete('/v1/grants', async (c) => c.json(await files.deleteGrant(c.var.caller, query(h(c), 'path'), query(h(c), 'user'))));

  app.put('/v1/files/*', async (c) => {
    const path = filePathOf(c.req.url);
    const incoming = c.env.incoming;
    if (c.req.header('expect') && !/^100-continue$/i.test(c.req.header('expect') ?? '')) throw bad('unsupported Expect');
    const declared = incoming.headers['content-length'];
    let size: number | undefined;
    if (declared !== undefined) {
      if (!/^\d{1,16}$/.test(declared)) throw bad('Content-Length must be a decimal number');
      size = Number(declared);
    }
    const overwrite = c.req.header('if-none-match')?.trim() !== '*';
    const r = await files.put(c.var.caller, path, incoming, { ...(size === undefined ? {} : { size }), overwrite });
    metrics?.bytesSealed.inc(r.size);
    return c.json({ ...r.node, etag: `"${r.node.blobId}"` }, 201, { etag: `"${r.node.blobId}"` });
  });

  app.post('/v1/files/*', async (c) => {
    const dir = filePathOf(c.req.url);
    const stored = await readForm(c, files, dir);
    for (const f of stored) metrics?.bytesSealed.inc(f.size);
    return c.json({ files: stored }, 201);
  });

  app.delete('/v1/files/*', async (c) => c.json(await files.remove(c.var.caller, filePathOf(c.req.url), flag(h(c), 'recursive'))));

  const download = async (c: GCtx, head: boolean): Promise<Response> => {
    const file = await files.open(c.var.caller, filePathOf(c.req.url));
    let handedOver = false;
    try {
      const etag = `"${file.etag}"`;
      const lastModified = new Date(file.node.modifiedAt).toUTCString();
      const base: Record<string, string> = { etag, 'last-modified': lastModified, 'accept-ranges': 'bytes', 'cache-control': 'private, no-cache' };
      const ifMatch = c.req.header('if-match');
      if (ifMatch !== undefined && !etagListMatches(ifMatch, etag)) throw new CofferError(ErrorCode.PRECONDITION_FAILED, 'If-Match does not match the current content');
      const ifNoneMatch = c.req.header('if-none-match');
      const ifModifiedSince = c.req.header('if-modified-since');
      if ((ifNoneMatch !== undefined && etagListMatches(ifNoneMatch, etag))
        || (ifNoneMatch === undefined && ifModifiedSince !== undefined && notModifiedSince(file.node.modifiedAt, ifModifiedSince))) {
        return c.body(null, 304, base);
      }
      const ifRange = c.req.header('if-range');
      const rangeApplies = ifRange === undefined || ifRange.trim() === etag;
      const range = rangeApplies ? parseRange(c.req.header('range'), file.size) : undefined;
      const start = range?.start ?? 0;
      const end = range ? range.end + 1 : file.size;
      const headers: Record<string, string> = { ...base, 'content-type': 'application/octet-stream', 'content-length': String(end - start) };
      if (range) headers['content-range'] = `bytes ${start}-${range.end}/${file.size}`;
      const status = range ? 206 : 200;
      if (head || end === start) return c.body(null, status, headers);
      handedOver = true;
      await sendBody(c.env.outgoing, (sink) => file.read(start, end, sink), status, headers, ({ error, started }) => {
        file.close();
        if (error === undefined) metrics?.bytesOpened.inc(end - start);
        else if (started) {
          metrics?.downloadsCutOff.inc();
          deps.logger?.warn({ err: toCofferError(error) }, 'download cut off');
        }
      });
      return new Response(null, { headers: { [ALREADY_SENT]: 'true' } });
    } finally {
      if (!handedOver) file.close();
    }
  };
  app.get('/v1/files/*', (c) => download(c, false));
  app.on('HEAD', '/v1/files/*', (c) => download(c, true));

  return app;
}

function etagListMatches(header: string, etag: string): boolean {
  return header.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === etag;
  });
}

function notModifiedSince(modifiedAt: string, header: string): boolean {
  const since = Date.parse(header);
  if (Number.isNaN(since)) return false;
  return Math.floor(Date.parse(modifiedAt) / 1000) * 1000 <= since;
}

/** Stores every file part of a multipart form under `dir`, one after another. */
async function readForm(c: GCtx, files: FileOps, dir: string): Promise<Array<{ path: string; size: number }>> {
  const incoming: IncomingMessage = c.env.incoming;
  const type = incoming.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) throw bad('Content-Type must be multipart/form-data');
  let bb: busboy.Busboy;
  try {
    bb = busboy({ headers: incoming.headers, limits: { files: 1000, fields: 100, fieldSize: 64 * 1024 } });
  } catch (e) {
    throw bad(`malformed multipart request: ${(e as Error).message}`);
  }
  const stored: Array<{ path: string; size: number }> = [];
  const overwrite = c.req.header('if-none-match')?.trim() !== '*';
  await new Promise<void>((resolve, reject) => {
    let chain = Promise.resolve();
    let failed = false;
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      incoming.unpipe(bb);
      incoming.resume();
      reject(e);
    };
    bb.on('file', (_name, stream, info) => {
      const name = info.filename ?? '';
      chain = chain.then(async () => {
        if (failed) return void stream.resume();
        if (name === '' || name.includes('/') || name === '.' || name === '..') throw new CofferError(ErrorCode.INVALID_PATH, `file name ${JSON.stringify(name)} cannot be stored`);
        const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
        const r = await files.put(c.var.caller, path, stream, { overwrite });
        stored.push({ path: r.node.path, size: r.size });
      }).catch((e: unknown) => {
        stream.resume();
        fail(e);
      });
    });
    bb.on('error', (e) => fail(bad(`malformed multipart request: ${(e as Error).message}`)));
    bb.on('close', () => {
      void chain.then(() => {
        if (!failed) resolve();
      });
    });
    incoming.pipe(bb);
  });
  return stored;
}
