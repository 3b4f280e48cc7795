// Tree routes: stat, list, mkdir, move, remove (docs/http-api.md "Tree"). Paths travel in the query string or
// the JSON body, never in the URL path, so URL dot-segment normalisation cannot rewrite them.
import type { Hono } from 'hono';
import { CofferError, ErrorCode } from '../../errors.js';
import type { Vault } from '../../vault/index.js';
import { field, optionalQuery, readJson, query, type ApiEnv } from '../http.js';

export function treeRoutes(app: Hono<ApiEnv>, vault: Vault): void {
  app.get('/v1/fs/stat', async (c) => c.json(await vault.stat(c.var.actor, query(c, 'path'))));

  app.get('/v1/fs/list', async (c) => {
    const limitText = optionalQuery(c, 'limit');
    if (limitText !== undefined && !/^(?:[1-9]\d{0,4})$/.test(limitText)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'limit must be 1..1000');
    const limit = limitText === undefined ? undefined : Number(limitText);
    return c.json(await vault.list(c.var.actor, query(c, 'path'), { after: optionalQuery(c, 'after'), limit }));
  });

  app.post('/v1/fs/mkdir', async (c) => {
    const b = await readJson(c, ['path', 'parents']);
    const r = await vault.mkdir(c.var.actor, field.string(b, 'path'), { parents: field.optBool(b, 'parents') });
    return c.json(r.node, r.created ? 201 : 200);
  });

  app.post('/v1/fs/move', async (c) => {
    const b = await readJson(c, ['from', 'to', 'overwrite']);
    return c.json(await vault.move(c.var.actor, field.string(b, 'from'), field.string(b, 'to'), { overwrite: field.optBool(b, 'overwrite') }));
  });

  app.post('/v1/fs/remove', async (c) => {
    const b = await readJson(c, ['path', 'recursive']);
    return c.json(await vault.remove(c.var.actor, field.string(b, 'path'), { recursive: field.optBool(b, 'recursive') }));
  });
}
