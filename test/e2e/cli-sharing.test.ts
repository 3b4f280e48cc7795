// Sharing and administration through the real `coffer` command against a real `coffer serve` (default role
// `none`, so nothing works without a grant), on both metadata stores: share / unshare / grants (inherited ones
// marked), whoami, users list|disable|enable; and `coffer audit log` reading what they did.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { runCliProcess, startServerProcess } from '../../bench/cli-process.js';

// each test spawns many `coffer` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 240_000 });

const mongoUri = inject('mongoUri');

/** The URI with its database replaced by `db` (one fresh database per test run). */
function withDatabase(uri: string, db: string): string {
  const u = new URL(uri);
  u.pathname = `/${db}`;
  return u.toString();
}

describe.each([
  { store: 'sqlite', uri: null as string | null },
  { store: 'mongo', uri: mongoUri ? withDatabase(mongoUri, `coffer_share_${randomBytes(4).toString('hex')}`) : null },
])('sharing and users from the command line ($store)', ({ store, uri }) => {
  const skip = store === 'mongo' && !uri;
  let work: string;
  let dataDir: string;
  let server: Awaited<ReturnType<typeof startServerProcess>>;
  const env: Record<string, NodeJS.ProcessEnv> = {};
  const storeEnv: NodeJS.ProcessEnv = uri ? { COFFER_MONGODB_URI: uri } : {};

  const as = (who: string, args: string[]) => runCliProcess(args, { ...storeEnv, ...env[who] });
  async function ok(who: string, args: string[]): Promise<string> {
    const r = await as(who, args);
    if (r.code !== 0) throw new Error(`${who}: coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  beforeAll(async () => {
    if (skip) return;
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-share-'));
    dataDir = path.join(work, 'data');
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--gc-interval', '0'], storeEnv);
    const keyFile = path.join(work, 'k.key');
    await runCliProcess(['keygen', '--out', keyFile]);
    for (const [who, admin] of [['root', true], ['alice', false], ['bob', false]] as const) {
      const token = (await runCliProcess(['token', '--data-dir', dataDir, '--user', who, ...(admin ? ['--admin'] : [])])).stdout.trim();
      env[who] = { COFFER_SERVER: server.url, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, `state-${who}`) };
    }
    await ok('root', ['mkdir', '/lab']);
    await ok('root', ['share', '/lab', '--user', 'alice', '--role', 'admin']);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.skipIf(skip)('whoami says who the token is and what it may do', async () => {
    expect(JSON.parse(await ok('alice', ['whoami', '--json']))).toMatchObject({ user: 'alice', admin: false, defaultRootRole: 'none', home: null });
    expect(await ok('root', ['whoami'])).toMatch(/^root \(admin token/);
  });

  it.skipIf(skip)('share gives a role, grants lists it (inherited ones marked), unshare takes it back', async () => {
    const src = path.join(work, 'data.csv');
    await writeFile(src, 'a,b\n1,2\n');
    await ok('alice', ['mkdir', '/lab/results']);
    await ok('alice', ['put', src, '/lab/results/data.csv']);
    const denied = await as('bob', ['ls', '/lab/results']);
    expect(denied.code).toBe(5);
    expect(denied.stderr).toMatch(/^coffer: .*\[PERMISSION_DENIED\]\n$/);

    expect(await ok('alice', ['share', '/lab/results', '--user', 'bob', '--role', 'read'])).toMatch(/bob now has read on \/lab\/results/);
    expect(await ok('bob', ['ls', '/lab/results'])).toBe('data.csv\n');
    expect(await ok('bob', ['get', '/lab/results/data.csv', path.join(work, 'bob.csv')])).toMatch(/verified/);
    // read is not write
    const write = await as('bob', ['put', src, '/lab/results/mine.csv']);
    expect(write.code).toBe(5);

    const grants = JSON.parse(await ok('alice', ['grants', '/lab/results/data.csv', '--json'])) as Array<{ user: string; role: string; path: string; inherited: boolean }>;
    expect(grants.map(({ user, role, path: p, inherited }) => ({ user, role, path: p, inherited }))).toEqual([
      { user: 'alice', role: 'admin', path: '/lab', inherited: true },
      { user: 'bob', role: 'read', path: '/lab/results', inherited: true },
    ]);
    expect(await ok('alice', ['grants', '/lab/results'])).toMatch(/admin alice {2}\(inherited from \/lab\)\nread {2}bob$/m);
    // bob has no admin: he cannot share onwards or see the grants
    expect((await as('bob', ['share', '/lab/results', '--user', 'mallory'])).code).toBe(5);
    expect((await as('bob', ['grants', '/lab/results'])).code).toBe(5);

    expect(await ok('alice', ['unshare', '/lab/results', '--user', 'bob'])).toMatch(/bob has no grant on \/lab\/results any more/);
    expect((await as('bob', ['ls', '/lab/results'])).code).toBe(5);
    // unsharing where the grant is inherited says so
    expect(await ok('root', ['unshare', '/lab/results', '--user', 'alice'])).toMatch(/alice still has admin from \/lab/);
  });

  it.skipIf(skip)('bad roles and user names are one-line usage errors', async () => {
    const role = await as('alice', ['share', '/lab', '--user', 'bob', '--role', 'owner']);
    expect(role.code).toBe(2);
    expect(role.stderr).toMatch(/^coffer: .*owner.*\[INVALID_ARGUMENT\]\n$/);
    const name = await as('alice', ['share', '/lab', '--user', ':system']);
    expect(name.code).toBe(2);
    expect((await as('alice', ['share', '/nowhere', '--user', 'bob'])).code).toBe(3);
  });

  it.skipIf(skip)('an admin lists, disables and enables users; a disabled token is refused at once', async () => {
    await ok('bob', ['whoami']);
    const users = JSON.parse(await ok('root', ['users', 'list', '--json'])) as Array<{ name: string; disabled: boolean }>;
    expect(users.map((u) => u.name)).toEqual(expect.arrayContaining(['alice', 'bob', 'root']));
    expect((await as('alice', ['users', 'list'])).code).toBe(5);
    expect((await as('alice', ['users', 'disable', 'bob'])).code).toBe(5);

    expect(await ok('root', ['users', 'disable', 'bob'])).toBe('bob is disabled\n');
    const refused = await as('bob', ['whoami']);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/user bob is disabled \[PERMISSION_DENIED\]/);
    expect(await ok('root', ['users', 'list'])).toMatch(/^bob {2}\(disabled\)$/m);
    expect(await ok('root', ['users', 'enable', 'bob'])).toBe('bob is enabled\n');
    expect(JSON.parse(await ok('bob', ['whoami', '--json']))).toMatchObject({ user: 'bob' });
    expect((await as('root', ['users', 'disable', 'root'])).code).toBe(2);
  });

  it.skipIf(skip)('audit log reads what they did from this store, verified', async () => {
    type Entry = { actor: string; action: string; target: string; details: Record<string, unknown> };
    const log = JSON.parse(await ok('root', ['audit', 'log', '--data-dir', dataDir, '--user', 'root', '--json'])) as Entry[];
    expect(log.map((e) => `${e.action} ${e.target}`)).toEqual(expect.arrayContaining([
      'grant.put /lab', 'grant.delete /lab/results', 'user.disable bob', 'user.enable bob',
    ]));
    const results = JSON.parse(await ok('root', ['audit', 'log', '--data-dir', dataDir, '--path', '/lab/results', '--json'])) as Entry[];
    expect(results.find((e) => e.action === 'grant.put')).toMatchObject({ actor: 'alice', details: { user: 'bob', role: 'read' } });
  });
});
