// Users: recorded (and audited) the first time they act, refused once disabled in the metadata store.
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestVault, type TestVault } from './test-env.js';
import { USER_CACHE_MS } from './users.js';
import { ROOT_ID } from '../metadata/types.js';

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

  it('homes: /home belongs to :system, /home/NAME to NAME alone', async () => {
    t = await openTestVault({ homes: true });
    const alice = { user: 'alice', admin: false };
    const bob = { user: 'bob', admin: false };
    await t.vault.admitUser(alice);
    await t.vault.admitUser(bob);
    expect(await t.vault.stat(alice, '/home/alice')).toMatchObject({ owner: 'alice', type: 'dir' });
    expect(t.vault.homeOf(alice)).toBe('/home/alice');
    await expect(t.vault.list(bob, '/home/alice')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(t.vault.list(bob, '/home')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await t.vault.stat({ user: 'root', admin: true }, '/home')).toMatchObject({ owner: ':system' });
    // a name that is no path segment gets no home, and is still let in
    const odd = { user: 'a/b', admin: false };
    await t.vault.admitUser(odd);
    expect(t.vault.homeOf(odd)).toBeNull();
  });

  it('homes: a /home that someone owns, or a file named /home, gives nobody a home and blocks nobody', async () => {
    t = await openTestVault({ homes: true, defaultRootRole: 'write' });
    const mallory = { user: 'mallory', admin: false };
    await t.vault.mkdir({ user: 'root', admin: true }, '/home'); // owned by root, not :system
    await t.vault.admitUser(mallory);
    await expect(t.vault.stat(mallory, '/home/mallory')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await t.vault.remove({ user: 'root', admin: true }, '/home');
    const now = new Date();
    await t.store.insertNode({ id: 'file-home', parentId: ROOT_ID, name: 'home', type: 'file', blobId: 'aa'.repeat(16), size: 0, owner: 'root', createdAt: now, modifiedAt: now, version: 1 });
    const carol = { user: 'carol', admin: false };
    await t.vault.admitUser(carol); // let in, without a home
    expect(await t.vault.stat(carol, '/home')).toMatchObject({ type: 'file' });
  });
});
