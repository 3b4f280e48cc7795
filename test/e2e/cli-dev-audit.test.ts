// Development mode as `npm start` runs it (`coffer dev`, a real process): each user has /home/NAME, theirs
// alone, and the banner says what dev tokens can do; a second `coffer dev` on the data directory is refused.
// Then, for the admin on the host: `coffer audit log` (filters; verified as read, so an edited entry stops it)
// and `coffer fsck` naming the vault path of a damaged blob.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';

// each test spawns many `coffer` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 240_000 });

let work: string;
let dataDir: string;
let dev: Awaited<ReturnType<typeof startServerProcess>>;
let banner = '';
const env: Record<string, NodeJS.ProcessEnv> = {};

const as = (who: string, args: string[]) => runCliProcess(args, env[who]);
async function ok(who: string, args: string[]): Promise<string> {
  const r = await as(who, args);
  if (r.code !== 0) throw new Error(`${who}: coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-dev-'));
  dataDir = path.join(work, 'data');
  dev = await startServerProcess(['dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--kms-listen', '127.0.0.1:0', '--gateway-listen', '127.0.0.1:0']);
  const keyFile = path.join(work, 'k.key');
  await runCliProcess(['keygen', '--out', keyFile]);
  for (const who of ['alice', 'bob']) {
    const token = (await runCliProcess(['token', '--data-dir', dataDir, '--user', who])).stdout.trim();
    env[who] = { COFFER_SERVER: dev.url, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, `state-${who}`), COFFER_DATA_DIR: dataDir };
  }
}, 240_000);

afterAll(async () => {
  await dev?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('coffer dev: a home per user', () => {
  it('says at start what dev tokens can do', async () => {
    // the banner as people see it: a second dev on another data directory, stopped once it has printed it
    const other = spawnCli(['dev', '--data-dir', path.join(work, 'other'), '--listen', '127.0.0.1:0', '--kms-listen', '127.0.0.1:0', '--gateway-listen', '127.0.0.1:0']);
    await new Promise<void>((resolve, reject) => {
      other.stdout?.on('data', (d: Buffer) => {
        banner += d.toString();
        if (banner.includes('Ctrl-C stops everything')) resolve();
      });
      other.on('close', (code) => reject(new Error(`coffer dev exited ${code}: ${banner}`)));
    });
    other.kill('SIGTERM');
    expect(banner).toMatch(/each user NAME has \/home\/NAME, theirs alone; nothing else without a grant/);
    expect(banner).toMatch(/put \.\/some-file \/home\/alice\/some-file/);
  });

  it('each user works in their own home and nowhere else until shared', async () => {
    expect(JSON.parse(await ok('alice', ['whoami', '--json']))).toMatchObject({ user: 'alice', home: '/home/alice', defaultRootRole: 'none' });
    const src = path.join(work, 'notes.txt');
    await writeFile(src, 'alice only\n');
    await ok('alice', ['mkdir', '/home/alice/docs']);
    await ok('alice', ['put', src, '/home/alice/docs/']);
    await ok('bob', ['whoami']);
    for (const args of [['ls', '/home/alice'], ['get', '/home/alice/docs/notes.txt', path.join(work, 'stolen.txt')], ['rm', '-r', '/home/alice/docs'], ['mkdir', '/shared'], ['ls', '/']]) {
      const r = await as('bob', args);
      expect(r.code, `bob: coffer ${args.join(' ')}`).toBe(5);
      expect(r.stderr).toMatch(/\[PERMISSION_DENIED\]\n$/);
    }
    // bob cannot move his way into alice's home either
    await ok('bob', ['mkdir', '/home/bob/x']);
    expect((await as('bob', ['mv', '/home/bob/x', '/home/alice/'])).code).toBe(5);
    await ok('alice', ['share', '/home/alice/docs', '--user', 'bob', '--role', 'read']);
    await ok('bob', ['get', '/home/alice/docs/notes.txt', path.join(work, 'shared.txt')]);
    expect(await readFile(path.join(work, 'shared.txt'), 'utf8')).toBe('alice only\n');
  });

  it('a second coffer dev on the same data directory is refused', async () => {
    const second = await runCliProcess(['dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--kms-listen', '127.0.0.1:0', '--gateway-listen', '127.0.0.1:0']);
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(/in use by another coffer service.*\[CONFLICT\]/);
  });
});

describe('admin tools on the host', () => {
  it('audit log shows who did what, filtered by user, path and time', async () => {
    type Entry = { seq: number; actor: string; action: string; target: string };
    const all = JSON.parse(await ok('alice', ['audit', 'log', '--json'])) as Entry[];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    const bob = JSON.parse(await ok('alice', ['audit', 'log', '--user', 'bob', '--json'])) as Entry[];
    expect(bob.length).toBeGreaterThan(0);
    expect(bob.every((e) => e.actor === 'bob')).toBe(true);
    const docs = JSON.parse(await ok('alice', ['audit', 'log', '--path', '/home/alice/docs', '--json'])) as Entry[];
    expect(docs.map((e) => `${e.actor} ${e.action} ${e.target}`)).toEqual(expect.arrayContaining([
      'alice dir.create /home/alice/docs', 'alice upload.commit /home/alice/docs/notes.txt', 'alice grant.put /home/alice/docs',
    ]));
    expect(docs.every((e) => e.target.startsWith('/home/alice/docs'))).toBe(true);
    expect(JSON.parse(await ok('alice', ['audit', 'log', '--since', '2999-01-01', '--json']))).toEqual([]);
    expect(JSON.parse(await ok('alice', ['audit', 'log', '--since', '1h', '--json']))).toHaveLength(all.length);
    const human = await ok('alice', ['audit', 'log', '--user', 'alice', '--path', '/home/alice/docs/notes.txt']);
    expect(human).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z {2}alice {2}upload\.commit {2}\/home\/alice\/docs\/notes\.txt/m);
    expect((await as('alice', ['audit', 'log', '--since', 'yesterday'])).code).toBe(2);
  });

  it('fsck names the vault path of a damaged blob', async () => {
    const src = path.join(work, 'damaged.bin');
    await writeFile(src, Buffer.alloc(5000, 7));
    const put = JSON.parse(await ok('alice', ['put', src, '/home/alice/docs/damaged.bin', '--json'])) as { blobId: string };
    const chunk = path.join(dataDir, 'chunks', put.blobId.slice(0, 2), put.blobId.slice(2, 4), put.blobId, '00000000');
    const sealed = await readFile(chunk);
    sealed[100] = (sealed[100] as number) ^ 1;
    await writeFile(chunk, sealed);
    const json = await as('alice', ['fsck', '--read-data', '--json']);
    expect(json.code).toBe(6);
    expect((JSON.parse(json.stdout) as { problems: unknown[] }).problems).toEqual([
      expect.objectContaining({ kind: 'chunk-damaged', blobId: put.blobId, paths: ['/home/alice/docs/damaged.bin'] }),
    ]);
    expect((await as('alice', ['fsck', '--read-data'])).stdout).toMatch(/chunk-damaged .*\(file: \/home\/alice\/docs\/damaged\.bin\)/);
  });

  it('an edited audit entry stops the log there with AUDIT_CHAIN_BROKEN', async () => {
    const db = new DatabaseSync(path.join(dataDir, 'metadata.sqlite'));
    const victim = db.prepare("SELECT seq FROM audit WHERE action = 'grant.put' LIMIT 1").get() as { seq: number };
    db.prepare('UPDATE audit SET actor = ? WHERE seq = ?').run('mallory', victim.seq);
    db.close();
    const r = await as('alice', ['audit', 'log']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(new RegExp(`audit chain broken at entry ${victim.seq}: hash does not match.*\\[AUDIT_CHAIN_BROKEN\\]\\n$`));
    expect(r.stdout.trim().split('\n')).toHaveLength(victim.seq - 1);
    expect(r.stdout).not.toMatch(/mallory/);
  });
});
