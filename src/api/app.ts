// The storage service's hono app: request id + access log + metrics, probes, bearer auth on /v1, the routes,
// and one error handler that turns every CofferError into `{ error: { code, message } }` with its table status.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Hono } from 'hono';
import { routePath } from 'hono/route';
import { CofferError, ErrorCode } from '../errors.js';
import { createLogger, type Logger, type ServiceMetrics } from '../telemetry/index.js';
import type { Vault } from '../vault/index.js';
import type { Authenticator } from './auth/index.js';
import { errorResponse, type ApiEnv } from './http.js';
import { discardUnreadBody } from './linger.js';
import { downloadRoutes } from './routes/downloads.js';
import { fileRoutes } from './routes/files.js';
import { fileBatchRoutes } from './routes/file-batch.js';
import { grantRoutes } from './routes/grants.js';
import { integrityRoutes } from './routes/integrity.js';
import { treeRoutes } from './routes/tree.js';
import { uploadRoutes } from './routes/uploads.js';

export interface ApiLimits {
  /** Max file parts in one multipart chunk upload (default 16). */
  maxMultipartParts?: number;
}

export interface AppDeps {
  vault: Vault;
  auth: Authenticator;
  logger?: Logger;
  metrics?: ServiceMetrics;
  limits?: ApiLimits;
  /** Called after a request released space (a remove, an aborted upload): the server starts a GC pass soon. */
  onSpaceReleased?: () => void;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** How long /readyz waits for the stores before it answers 503. */
const READY_TIMEOUT_MS = 2_000;

export function createApp(deps: AppDeps): Hono<ApiEnv> {
  const { vault, auth, metrics } = deps;
  const logger = deps.logger ?? createLogger({ level: 'silent' });
  const app = new Hono<ApiEnv>();

  app.use('*', async (c, next) => {
    const t0 = performance.now();
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    c.header('X-Request-Id', requestId);
    await next();
    const route = routePath(c, -1);
    const label = route.endsWith('*') ? 'unmatched' : route;
    const seconds = (performance.now() - t0) / 1000;
    metrics?.httpRequests.inc({ method: c.req.method, route: label, status: String(c.res.status) });
    metrics?.httpDuration.observe({ method: c.req.method, route: label }, seconds);
    const entry = { reqId: requestId, method: c.req.method, route: label, status: c.res.status, ms: Math.round(seconds * 1000), user: c.get('actor')?.user, code: c.get('errorCode') };
    if (c.res.status >= 500) logger.error(entry, 'request');
    else logger.info(entry, 'request');
  });

  app.onError(async (e, c) => {
    const { status, body, error } = errorResponse(e);
    c.set('errorCode', error.code);
    if (status >= 500) logger.error({ reqId: c.get('requestId'), err: error, cause: error.cause }, 'request failed');
    // The request body may be unread (refused before reading): do not reuse this connection, and read the rest
    // of the body first (bounded, see linger.ts) so that the client still sending it gets this answer.
    const incoming = c.env?.incoming;
    if (incoming && !incoming.readableEnded && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      c.header('Connection', 'close');
      await discardUnreadBody(incoming);
    }
    if (status === 503) c.header('Retry-After', '1');
    if (error.code === ErrorCode.RANGE_NOT_SATISFIABLE && typeof error.details?.size === 'number') {
      c.header('Content-Range', `bytes */${error.details.size}`);
    }
    return c.json(body, status as 400);
  });

  app.notFound((c) => c.json({ error: { code: ErrorCode.NOT_FOUND, message: `no route ${c.req.method} ${c.req.path}` } }, 404));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  // a probe gets its answer in time: a metadata store that does not answer is "not ready", not a hung request
  // (the driver alone would wait for its whole server-selection timeout)
  app.get('/readyz', async (c) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CofferError(ErrorCode.UNAVAILABLE, `not ready within ${READY_TIMEOUT_MS} ms`, { retryable: true })), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([vault.checkReady(), late]);
    } finally {
      clearTimeout(timer);
    }
    return c.json({ status: 'ready' });
  });
  app.get('/metrics', async (c) => {
    if (!metrics) throw new CofferError(ErrorCode.NOT_FOUND, 'metrics are disabled');
    return c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType });
  });

  app.use('/v1/*', async (c, next) => {
    const actor = await auth.authenticate(c.req.header('authorization'));
    await vault.admitUser(actor);
    c.set('actor', actor);
    await next();
  });
  // space a remove or an abort released comes back at the next GC pass: ask for one now rather than in 10 minutes
  const released = async (c: { res: Response }, next: () => Promise<void>): Promise<void> => {
    await next();
    if (c.res.status === 200) deps.onSpaceReleased?.();
  };
  app.post('/v1/fs/remove', released);
  app.delete('/v1/uploads/:blobId', released);
  app.get('/v1/uploads', async (c) => {
    const all = c.req.query('all');
    if (all !== undefined && all !== 'true' && all !== 'false') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'all must be true or false');
    return c.json({ uploads: await vault.listUploads(c.var.actor, { all: all === 'true' }) });
  });
  app.get('/v1/whoami', (c) => c.json({ user: c.var.actor.user, admin: c.var.actor.admin, defaultRootRole: vault.defaultRootRole, home: vault.homeOf(c.var.actor) }));

  uploadRoutes(app, vault, metrics, { maxMultipartParts: deps.limits?.maxMultipartParts ?? 16 });
  downloadRoutes(app, vault, metrics);
  fileRoutes(app, vault, metrics);
  fileBatchRoutes(app, vault, metrics);
  treeRoutes(app, vault);
  grantRoutes(app, vault);
  integrityRoutes(app, vault);
  return app;
}
