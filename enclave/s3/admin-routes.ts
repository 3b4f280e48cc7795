// The gateway's access-key routes (behind the attested TLS, an administrator's token only): the secret is made
// inside the enclave, sealed there under the KMS-released key (sealing-key.ts), and returned once to the caller.
//   POST   /v1/s3/access-keys        {"user": NAME}  → 201 {accessKeyId, secretAccessKey, user, createdAt}
//   GET    /v1/s3/access-keys[?user=NAME]          → 200 {keys: [{id, user, createdAt}]}   (never a secret)
//   DELETE /v1/s3/access-keys/<id>                 → 200 {revoked: id}
import { Hono } from 'hono';
import type { Authenticator } from '../../src/api/auth/index.js';
import { errorResponse, jsonObjectFrom } from '../../src/api/http.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { AccessKeyStore } from './access-keys.js';

const MAX_BODY = 4096;

type AdminEnv = { Variables: { actor: string } };

/** Routes relative to /v1/s3. Every request needs a valid administrator token (UNAUTHENTICATED / PERMISSION_DENIED). */
export function createAccessKeyRoutes(store: AccessKeyStore, auth: Authenticator, audit?: (event: Record<string, string>) => void): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>();
  app.onError((e) => {
    const { status, body } = errorResponse(e);
    return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  });
  app.use('*', async (c, next) => {
    const actor = await auth.authenticate(c.req.header('authorization'));
    if (!actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'access keys are managed by an administrator');
    c.set('actor', actor.user);
    await next();
  });
  app.post('/access-keys', async (c) => {
    if (!/^application\/json\s*(;|$)/i.test(c.req.header('content-type') ?? '')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Content-Type must be application/json');
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > MAX_BODY) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `JSON body over ${MAX_BODY} bytes`);
    const body = jsonObjectFrom(bytes, ['user']);
    if (typeof body.user !== 'string') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'user must be a string');
    const k = await store.create(body.user);
    audit?.({ audit: 's3.access-key.create', id: k.id, user: k.user, by: c.get('actor') });
    return c.json({ accessKeyId: k.id, secretAccessKey: k.secret, user: k.user, createdAt: k.createdAt }, 201, { 'cache-control': 'no-store' });
  });
  app.get('/access-keys', async (c) => {
    const user = c.req.query('user');
    return c.json({ keys: await store.list(user) });
  });
  app.delete('/access-keys/:id', async (c) => {
    const id = c.req.param('id');
    await store.revoke(id);
    audit?.({ audit: 's3.access-key.revoke', id, by: c.get('actor') });
    return c.json({ revoked: id });
  });
  return app;
}
