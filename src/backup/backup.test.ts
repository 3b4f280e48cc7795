// Backup to a directory, end to end over real stores: a live vault filled through the normal upload path,
// snapshots taken while it serves, verify with corruption and deletion at the target, restore into SQLite and
// into the MongoDB-wire server served byte-identical through the normal download path, edited manifests
// refused, list and prune, and a `coffer backup create` process killed halfway and resumed.
import { readdir, readFile, rm, writeFile, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCliProcess, spawnCli } from '../../bench/cli-process.js';
import { openChunkStore } from '../../storage-backend/index.js';
import { CofferError } from '../errors.js';
import { openMetadataStore } from '../metadata/index.js';
import type { MetadataStore } from '../metadata/types.js';
import { verifyAuditChain } from '../vault/index.js';
import {
  createSnapshot, findSnapshot, listSnapshots, openDirTarget, pruneSnapshots, restoreSnapshot, verifySnapshot,
  type BackupTarget, type RestoreDestination,
} from './index.js';
import { chunkSpot, chunksOnDisk, serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

const MiB = 1024 * 1024;
let ws: Workspace;
let vault: LiveVault;
const files = new Map<string, Buffer>();

async function snapshotOf(targetDir: string): Promise<ReturnType<typeof createSnapshot>> {
  const store = await openMetadataStore({ kind: 'sqlite', path: path.join(vault.dataDir, 'metadata.sqlite') });
  const chunks = await openChunkStore({ kind: 'fs', root: vault.dataDir });
  const target = await openDirTarget(targetDir, { create: true });
  try {
    return await createSnapshot(store, chunks, target);
  } finally {
    await target.close();
    await chunks.close();
    await store.close();
  }
}

async function withTarget<T>(dir: string, fn: (t: BackupTarget) => Promise<T>): Promise<T> {
  const t = await openDirTarget(dir, { create: false });
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

function sqliteDestination(dir: string, chunks: Awaited<ReturnType<typeof openChunkStore>>): RestoreDestination {
  const dbPath = path.join(dir, 'metadata.sqlite');
  return {
    description: dir, chunks, markerFile: path.join(dir, 'restore-in-progress.json'),
    openStore: () => openMetadataStore({ kind: 'sqlite', path: dbPath }),
    wipeStore: async () => {
      for (const s of ['', '-wal', '-shm']) await rm(dbPath + s, { force: true });
    },
  };
}

async function expectServesAll(restored: LiveVault): Promise<void> {
  for (const [p, bytes] of files) expect((await ws.get(restored, p)).equals(bytes), p).toBe(true);
}

beforeAll(async () => {
  ws = await workspace();
  vault = await serveVault(path.join(ws.dir, 'vault'));
  await vault.client.mkdir('/docs/deep/er', true);
  files.set('/docs/empty.bin', await ws.put(vault, '/docs/empty.bin', 0));
  files.set('/docs/one.bin', await ws.put(vault, '/docs/one.bin', 1));
  files.set('/docs/deep/er/two-chunks.bin', await ws.put(vault, '/docs/deep/er/two-chunks.bin', 8 * MiB + 1000));
  files.set('/top.bin', await ws.put(vault, '/top.bin', 100_000));
  await vault.client.putGrant('/docs', 'bob', 'read');
  // users as the enclave leaves them: disabled or not, with or without its MAC (restored verbatim, or the
  // gateway would refuse them; a disabled user must not come back enabled)
  const store = await openMetadataStore({ kind: 'sqlite', path: path.join(vault.dataDir, 'metadata.sqlite') });
  try {
    for (const [name, patch] of Object.entries(USERS)) {
      await store.ensureUser(name, { createdAt: USER_CREATED });
      await store.updateUser(name, patch);
    }
  } finally {
    await store.close();
  }
}, 120_000);

/** Users were made long before the restore: they come back with this date, not the restore's. */
const USER_CREATED = new Date('2025-06-07T08:09:10.111Z');
const USERS: Record<string, { disabled: boolean; mac?: string }> = {
  carol: { disabled: true, mac: `cm1.${'c'.repeat(64)}` },
  dave: { disabled: false, mac: `cm1.${'d'.repeat(64)}` },
  erin: { disabled: true },
};

async function expectUsersRestored(store: MetadataStore): Promise<void> {
  const users = new Map((await store.listUsers()).map((u) => [u.name, u]));
  for (const [name, want] of Object.entries(USERS)) {
    const u = users.get(name);
    expect(u, name).toBeDefined();
    expect(u?.disabled, name).toBe(want.disabled);
    expect(u?.mac ?? undefined, name).toBe(want.mac);
    expect(u?.createdAt, name).toEqual(USER_CREATED);
  }
}

afterAll(async () => {
  await vault?.close();
  await ws?.close();
});

describe('backup to a directory', () => {
  it('creates a full snapshot, then incremental ones that copy only what is new; all verify', async () => {
    const target = path.join(ws.dir, 'b1');
    const first = await snapshotOf(target);
    expect(first).toMatchObject({ files: 4, blobs: 4, chunks: 5, chunksCopied: 5, chunksUnchanged: 0, parent: null, bytes: 8 * MiB + 1000 + 100_001 });
    const second = await snapshotOf(target);
    expect(second).toMatchObject({ files: 4, chunksCopied: 0, chunksUnchanged: 5, parent: first.snapshot });
    files.set('/docs/new.bin', await ws.put(vault, '/docs/new.bin', 5000));
    const third = await snapshotOf(target);
    expect(third).toMatchObject({ files: 5, chunks: 6, chunksCopied: 1, chunksUnchanged: 5 });
    const list = await withTarget(target, (t) => listSnapshots(t));
    expect(list.map((s) => s.id)).toEqual([first.snapshot, second.snapshot, third.snapshot]);
    for (const s of list) {
      const r = await withTarget(target, async (t) => verifySnapshot(t, await findSnapshot(t, s.id.slice(0, 10))));
      expect(r).toMatchObject({ ok: true, problems: [] });
    }
    // the export never holds key material beyond the wrapped key records the store has
    const exported = await readFile(path.join(target, 'metadata', (await readdir(path.join(target, 'metadata')))[0] as string), 'utf8');
    expect(exported).not.toMatch(/"(dek|plaintextKey|key)":/i);
  }, 120_000);

  it('restores into an empty SQLite data dir that serves every file byte-identical, with the audit chain intact', async () => {
    const target = path.join(ws.dir, 'b1');
    const dest = path.join(ws.dir, 'restored-sqlite');
    await mkdir(dest);
    const chunks = await openChunkStore({ kind: 'fs', root: dest });
    const r = await withTarget(target, async (t) => restoreSnapshot(t, await findSnapshot(t), sqliteDestination(dest, chunks)));
    await chunks.close();
    expect(r).toMatchObject({ files: 5, chunksCopied: 6, resumed: false });
    const restored = await serveVault(dest);
    try {
      await expectServesAll(restored);
      expect((await restored.client.list('/docs')).items.map((e: { name: string }) => e.name).sort()).toEqual(['deep', 'empty.bin', 'new.bin', 'one.bin']);
      expect((await restored.client.grants('/docs')).grants).toMatchObject([{ user: 'bob', role: 'read' }]);
    } finally {
      await restored.close();
    }
    const store = await openMetadataStore({ kind: 'sqlite', path: path.join(dest, 'metadata.sqlite') });
    const audit = await verifyAuditChain(store);
    const last = await store.lastAudit();
    try {
      await expectUsersRestored(store);
    } finally {
      await store.close();
    }
    expect(audit.ok).toBe(true);
    expect(last?.action).toBe('backup.restore');
  }, 120_000);

  it('refuses to restore over a non-empty store without --force, and replaces it with --force', async () => {
    const target = path.join(ws.dir, 'b1');
    const dest = path.join(ws.dir, 'restored-sqlite');
    const cli = await runCliProcess(['backup', 'restore', target, '--to', dest]);
    expect(cli.code).toBe(4);
    expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    expect(cli.stderr).toMatch(/not empty.*--force/);
    const first = (await withTarget(target, (t) => listSnapshots(t)))[0]?.id as string;
    const forced = await runCliProcess(['backup', 'restore', target, '--to', dest, '--snapshot', first.slice(0, 8), '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ files: 4 });
    const restored = await serveVault(dest);
    try {
      await expect(ws.get(restored, '/docs/new.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await ws.get(restored, '/docs/deep/er/two-chunks.bin')).equals(files.get('/docs/deep/er/two-chunks.bin') as Buffer)).toBe(true);
    } finally {
      await restored.close();
    }
  }, 120_000);

  it('restores into the MongoDB-wire server (chunk files in a data dir) that serves every file byte-identical', async (ctx) => {
    const uri = inject('mongoUri');
    if (!uri) {
      if (process.env.CI === 'true') throw new Error(`no MongoDB-wire server: ${inject('mongoUnavailableReason')}`);
      ctx.skip();
      return;
    }
    const dbUri = `${uri.replace(/\/?(\?.*)?$/, '')}/coffer_restore_${Date.now().toString(36)}`;
    const dest = path.join(ws.dir, 'restored-mongo');
    const cli = await runCliProcess(['backup', 'restore', path.join(ws.dir, 'b1'), '--to', dbUri, '--data-dir', dest, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ files: 5, chunksCopied: 6 });
    const restored = await serveVault(dest, dbUri);
    try {
      await expectServesAll(restored);
    } finally {
      await restored.close();
    }
    const store = await openMetadataStore({ kind: 'mongo', uri: dbUri });
    try {
      await expectUsersRestored(store);
    } finally {
      await store.close();
    }
  }, 180_000);

  it('verify reports exactly which files lose which chunks when chunk files are corrupted or deleted', async () => {
    const target = path.join(ws.dir, 'b2');
    const made = await snapshotOf(target);
    const store = await openMetadataStore({ kind: 'sqlite', path: path.join(vault.dataDir, 'metadata.sqlite') });
    const blobOf = async (p: string): Promise<string> => {
      const parts = p.split('/').filter(Boolean);
      let id = 'root';
      for (const name of parts) id = (await store.getChild(id, name))?.id as string;
      return (await store.getNode(id))?.blobId as string;
    };
    const big = await blobOf('/docs/deep/er/two-chunks.bin');
    const small = await blobOf('/top.bin');
    await store.close();
    // the big file's full chunk 0 is a chunk file; its short chunk 1 and /top.bin's chunk sit in a pack
    const whole = await chunkSpot(target, big, 0);
    const packedTail = await chunkSpot(target, big, 1);
    const packedSmall = await chunkSpot(target, small, 0);
    expect([whole.packed, packedTail.packed, packedSmall.packed]).toEqual([false, true, true]);
    const pack = await readFile(packedSmall.file);
    const at = packedSmall.offset + packedSmall.length - 3;
    pack[at] = (pack[at] as number) ^ 0x01; // a flipped bit in the ciphertext tag of one packed chunk
    await writeFile(packedSmall.file, pack);
    await unlink(whole.file);

    const r = await withTarget(target, async (t) => verifySnapshot(t, await findSnapshot(t)));
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => ({ kind: p.kind, blob: p.blob, index: p.index, files: p.files })).sort((a, b) => a.kind.localeCompare(b.kind))).toEqual([
      { kind: 'missing', blob: big, index: 0, files: ['/docs/deep/er/two-chunks.bin'] },
      { kind: 'sha256', blob: small, index: 0, files: ['/top.bin'] },
    ]);
    expect(r.affectedFiles).toEqual(['/docs/deep/er/two-chunks.bin', '/top.bin']);

    const cli = await runCliProcess(['backup', 'verify', target, '--json']);
    expect(cli.code).toBe(6);
    expect(JSON.parse(cli.stdout)).toMatchObject({ snapshot: made.snapshot, ok: false, affectedFiles: r.affectedFiles });
    expect(cli.stderr).toMatch(/2 problem\(s\) affecting 2 file\(s\)/);

    // a header that lies about its blob is caught even with a matching digest (the record is what counts)
    const restoreCli = await runCliProcess(['backup', 'restore', target, '--to', path.join(ws.dir, 'never')]);
    expect(restoreCli.code).toBe(6);
    expect(restoreCli.stderr).toMatch(/missing or damaged chunk/);
  }, 120_000);

  it('refuses a manifest or a metadata export edited by hand', async () => {
    const target = path.join(ws.dir, 'b3');
    await snapshotOf(target);
    const [file] = await readdir(path.join(target, 'snapshots'));
    const mf = path.join(target, 'snapshots', file as string);
    const original = await readFile(mf, 'utf8');
    await writeFile(mf, original.replace('"files":5', '"files":6'));
    const e = await withTarget(target, async (t) => verifySnapshot(t, await findSnapshot(t))).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(CofferError);
    expect(e).toMatchObject({ code: 'INTEGRITY' });
    expect((e as Error).message).toMatch(/SHA-256 does not match its name/);
    await writeFile(mf, original);

    const [exp] = await readdir(path.join(target, 'metadata'));
    const ef = path.join(target, 'metadata', exp as string);
    const text = await readFile(ef, 'utf8');
    await writeFile(ef, text.replace('"owner":"alice"', '"owner":"mallory"'));
    const cli = await runCliProcess(['backup', 'verify', target]);
    expect(cli.code).toBe(6);
    expect(cli.stderr).toMatch(/edited or damaged/);
    const restore = await runCliProcess(['backup', 'restore', target, '--to', path.join(ws.dir, 'never2')]);
    expect(restore.code).toBe(6);
  }, 120_000);

  it('prune keeps the newest snapshots, deletes chunk files only the removed ones used, and the rest still verifies', async () => {
    const target = path.join(ws.dir, 'b4');
    await snapshotOf(target);
    files.set('/gone.bin', await ws.put(vault, '/gone.bin', 3000));
    files.set('/stays.bin', await ws.put(vault, '/stays.bin', 3000)); // in the target's pack beside gone.bin's chunk
    await snapshotOf(target);
    await vault.client.remove('/gone.bin');
    files.delete('/gone.bin');
    const last = await snapshotOf(target);
    const dry = await withTarget(target, (t) => pruneSnapshots(t, { keepLast: 1, keepDaily: 0 }, { dryRun: true }));
    expect(dry).toMatchObject({ kept: [last.snapshot], dryRun: true });
    expect(dry.removed).toHaveLength(2);
    const cli = await runCliProcess(['backup', 'prune', target, '--keep-last', '1', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ kept: [last.snapshot], blobsDeleted: 1, chunksDeleted: 1, exportsDeleted: 2 });
    const list = await runCliProcess(['backup', 'list', target, '--json']);
    expect((JSON.parse(list.stdout) as Array<{ id: string }>).map((s) => s.id)).toEqual([last.snapshot]);
    const r = await withTarget(target, async (t) => verifySnapshot(t, await findSnapshot(t)));
    expect(r.ok).toBe(true);
    // idempotent: the pack that held gone.bin's chunk (and still holds stays.bin's) kept its dead mark
    const again = await runCliProcess(['backup', 'prune', target, '--keep-last', '1', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ removed: [], blobsDeleted: 0, chunksDeleted: 0, exportsDeleted: 0 });
    expect((await readdir(target, { recursive: true })).filter((n) => n.endsWith('.dead'))).toHaveLength(1);
    const none = await runCliProcess(['backup', 'prune', target]);
    expect(none.code).toBe(2);
  }, 120_000);

  it('refuses bad input with one-line errors: a non-empty directory that is not a backup, a bad rate, an unknown snapshot', async () => {
    const notBackup = path.join(ws.dir, 'not-a-backup');
    await mkdir(notBackup);
    await writeFile(path.join(notBackup, 'precious.txt'), 'keep me');
    const r = await runCliProcess(['backup', 'create', '--to', notBackup, '--data-dir', vault.dataDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not a Coffer backup .* and not empty/);
    expect(await readdir(notBackup)).toEqual(['precious.txt']);
    const rate = await runCliProcess(['backup', 'create', '--to', path.join(ws.dir, 'b1'), '--data-dir', vault.dataDir, '--rate-limit', 'fast']);
    expect(rate.code).toBe(2);
    expect(rate.stderr).toMatch(/--rate-limit must be a byte rate/);
    const unknown = await runCliProcess(['backup', 'verify', path.join(ws.dir, 'b1'), '--snapshot', 'abcdef12']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  }, 120_000);

  it('a `backup create` killed halfway is resumed by running it again, copying only what is missing', async () => {
    const live = await serveVault(path.join(ws.dir, 'kill-vault'));
    const target = path.join(ws.dir, 'b-kill');
    try {
      for (let i = 0; i < 6; i++) await ws.put(live, `/f${i}.bin`, 64 * 1024);
      // chunk files, and chunks in packs (small chunks reach the target in packs, written about once a second)
      const chunkFiles = (): Promise<number> => chunksOnDisk(target);
      // 64 KiB/s: each chunk costs about a second, so the process is killed with most still to copy
      const child = spawnCli(['backup', 'create', '--to', target, '--data-dir', live.dataDir, '--concurrency', '1', '--rate-limit', '64KiB']);
      const exited = new Promise<number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ? null : code)));
      while ((await chunkFiles()) < 1) await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGKILL');
      expect(await exited).toBeNull();
      const copiedBeforeKill = await chunkFiles();
      expect(copiedBeforeKill).toBeGreaterThan(0);
      expect(copiedBeforeKill).toBeLessThan(6);
      expect(await readdir(path.join(target, 'snapshots')).catch(() => [])).toEqual([]);
      expect((await readdir(path.join(target, 'locks'))).length).toBe(1); // the killed run's lock

      const prune = await runCliProcess(['backup', 'prune', target, '--keep-last', '1']);
      expect(prune.code).toBe(4); // refused while a create lock exists

      const again = await runCliProcess(['backup', 'create', '--to', target, '--data-dir', live.dataDir, '--json']);
      expect(again.code, again.stderr).toBe(0);
      const r = JSON.parse(again.stdout) as { chunks: number; chunksCopied: number; chunksResumed: number };
      expect(r.chunks).toBe(6);
      expect(r.chunksResumed).toBe(copiedBeforeKill);
      expect(r.chunksCopied).toBe(6 - copiedBeforeKill);
      expect(await readdir(path.join(target, 'locks'))).toEqual([]); // the stale lock of the dead process is gone
      const verify = await runCliProcess(['backup', 'verify', target]);
      expect(verify.code, verify.stderr).toBe(0);
    } finally {
      await live.close();
    }
  }, 120_000);
});
