// Users: recorded (and audited) the first time they act, refused once disabled in the metadata store.
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestVault, type TestVault } from './test-env.js';
import { USER_CACHE_MS } from './users.js';

let t: TestVault | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('users', () => {
  it('records a user once, on first sight, with one audit entry', async () => {
    t = await openTestVault({ defaultRootRole: 'write' });
    expect(await t.store.getUser('alice')).toBeNull();
    await t.vault.admitUser({ user: 'alice', admin: false });
    await t.vault.admitUser({ user: 'alice', admin: false });
    expect(await t.store.getUser('alice')).toMatchObject({ name: 'alice', disabled: false });
    const entries = (await t.store.listAudit(0, 100)).filter((e) => e.action === 'user.create');
    expect(entries.map((e) => e.target)).toEqual(['alice']);
  });

  it('refuses a disabled user once the short cache has expired', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    t = await openTestVault({ defaultRootRole: 'write', now: () => new Date(now) });
    await t.vault.admitUser({ user: 'bob', admin: false });
    const db = new DatabaseSync(t.dbPath);
    const changed = db.prepare('UPDATE users SET disabled = 1 WHERE name = ?').run('bob').changes;
    db.close();
    expect(changed).toBe(1);
    now += USER_CACHE_MS + 1;
    await expect(t.vault.admitUser({ user: 'bob', admin: false })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
