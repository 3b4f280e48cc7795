// Grant routes, user administration and the audit head (docs/http-api.md "Grants", "Users", "Audit").
import type { Hono } from 'hono';
import { CofferError, ErrorCode } from '../../errors.js';
import type { Vault } from '../../vault/index.js';
import { field, optionalQuery, readJson, query, type ApiEnv } from '../http.js';

export function grantRoutes(app: Hono<ApiEnv>, vault: Vault): void {
  app.get('/v1/grants', async (c) => {
    const inherited = optionalQuery(c, 'inherited');
    if (inherited !== undefined && inherited !== 'true' && inherited !== 'false') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'inherited must be true or false');
    return c.json({ grants: await vault.listGrants(c.var.actor, query(c, 'path'), { inherited: inherited === 'true' }) });
  });

  app.put('/v1/grants', async (c) => {
    const b = await readJson(c, ['path', 'user', 'role', 'mac']);
    return c.json(await vault.putGrant(c.var.actor, field.string(b, 'path'), b.user, b.role, b.mac));
  });

  app.delete('/v1/grants', async (c) => {
    await vault.deleteGrant(c.var.actor, query(c, 'path'), query(c, 'user'));
    return c.json({ deleted: true });
  });

  app.get('/v1/users', async (c) => c.json({ users: await vault.listUsers(c.var.actor) }));

  app.post('/v1/users/disabled', async (c) => {
    const b = await readJson(c, ['user', 'disabled']);
    if (typeof b.disabled !== 'boolean') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'disabled must be true or false');
    return c.json(await vault.setUserDisabled(c.var.actor, b.user, b.disabled));
  });

  app.get('/v1/audit/head', async (c) => {
    if (!c.var.actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'the audit head is for token admins');
    return c.json(await vault.auditHead());
  });
}
