// Record MAC routes (docs/http-api.md "Record MACs"): the enclave attaches the MAC it made of a node, a committed
// blob or a user's status; the service stores it verbatim and returns it on reads. It never checks one.
import type { Hono } from 'hono';
import { checkBlobId } from '../../vault/uploads.js';
import type { Vault } from '../../vault/index.js';
import { field, readJson, query, type ApiEnv } from '../http.js';

export function integrityRoutes(app: Hono<ApiEnv>, vault: Vault): void {
  app.put('/v1/integrity/node', async (c) => {
    const b = await readJson(c, ['path', 'version', 'mac']);
    return c.json(await vault.setNodeMac(c.var.actor, field.string(b, 'path'), b.version, b.mac));
  });

  app.put('/v1/integrity/blob', async (c) => {
    const b = await readJson(c, ['blobId', 'mac']);
    const blobId = field.string(b, 'blobId');
    checkBlobId(blobId);
    return c.json(await vault.setBlobMac(c.var.actor, blobId, b.mac));
  });

  app.post('/v1/integrity/refused', async (c) => {
    const b = await readJson(c, ['kind', 'target', 'reason']);
    return c.json(await vault.reportRefusal(c.var.actor, b.kind, b.target, b.reason), 201);
  });

  app.get('/v1/integrity/access', async (c) => c.json(await vault.accessEvidence(c.var.actor, query(c, 'path'))));

  app.get('/v1/integrity/user', async (c) => c.json(await vault.userStatus(c.var.actor, query(c, 'user'))));

  app.put('/v1/integrity/user', async (c) => {
    const b = await readJson(c, ['user', 'disabled', 'mac']);
    return c.json(await vault.setUserStatus(c.var.actor, b.user, b.disabled, b.mac));
  });
}
