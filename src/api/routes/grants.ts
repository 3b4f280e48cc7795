// Grant routes and the audit head (docs/http-api.md "Grants", "Audit").
import type { Hono } from 'hono';
import { CofferError, ErrorCode } from '../../errors.js';
import type { Vault } from '../../vault/index.js';
import { field, readJson, query, type ApiEnv } from '../http.js';

export function grantRoutes(app: Hono<ApiEnv>, vault: Vault): void {
  app.get('/v1/grants', async (c) => c.json({ grants: await vault.listGrants(c.var.actor, query(c, 'path')) }));

  app.put('/v1/grants', async (c) => {
    const b = await readJson(c, ['path', 'user', 'role', 'mac']);
    return c.json(await vault.putGrant(c.var.actor, field.string(b, 'path'), b.user, b.role, b.mac));
  });

  app.delete('/v1/grants', async (c) => {
    await vault.deleteGrant(c.var.actor, query(c, 'path'), query(c, 'user'));
    return c.json({ deleted: true });
  });

  app.get('/v1/audit/head', async (c) => {
    if (!c.var.actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'the audit head is for token admins');
    return c.json(await vault.auditHead());
  });
}
