// Backup of packed chunks (docs/format.md "Pack file v2"; docs/backup.md "Packs"): files committed by a batch
// (put -r: their chunks live in one pack) are read through the chunk store like any other chunk, each checked
// against its record, and small chunks are written to the target, and back into a restored vault, many to a pack
// (not one chunk file each); the restored vault serves every file byte-identical.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openChunkStore } from '../../storage-backend/index.js';
import { uploadTree } from '../client/tree-transfer.js';
import { openMetadataStore } from '../metadata/index.js';
import { createSnapshot, findSnapshot, openDirTarget, restoreSnapshot, verifySnapshot } from './index.js';
import { chunksOnDisk, serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

let ws: Workspace;
let vault: LiveVault;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  ws = await workspace();
  vault = await serveVault(path.join(ws.dir, 'vault'));
  const tree = path.join(ws.dir, 'tree');
  await mkdir(tree);
  for (let i = 0; i < 30; i++) {
    const bytes = randomBytes(i === 0 ? 0 : 4000 + i);
    await writeFile(path.join(tree, `f${i}.bin`), bytes);
    files.set(`/t/f${i}.bin`, bytes);
  }
  const r = await uploadTree(vault.client, tree, '/t', { keys: ws.keys });
  expect(r).toMatchObject({ files: 30, failed: [] });
  files.set('/v1.bin', await ws.put(vault, '/v1.bin', 5000)); // a chunk v1 file beside the pack
}, 120_000);

afterAll(async () => {
  await vault?.close();
  await ws?.close();
});

describe('backup of packed chunks', () => {
  it('copies, verifies and restores files whose chunks sit in a pack', async () => {
    expect(await readdir(path.join(vault.dataDir, 'packs'))).toHaveLength(1);
    const targetDir = path.join(ws.dir, 'b');
    const store = await openMetadataStore({ kind: 'sqlite', path: path.join(vault.dataDir, 'metadata.sqlite') });
    const chunks = await openChunkStore({ kind: 'fs', root: vault.dataDir });
    const target = await openDirTarget(targetDir, { create: true });
    try {
      const snap = await createSnapshot(store, chunks, target);
      expect(snap).toMatchObject({ files: 31, chunks: 31, chunksCopied: 31 });
      expect(await verifySnapshot(target, await findSnapshot(target))).toMatchObject({ ok: true, problems: [] });
      // 31 small chunks (the packed ones and the v1 file's) reached the target in packs (one, or a few when the
      // copy took over a second: PACK_MAX_AGE_MS), no chunk file each
      expect(await chunksOnDisk(targetDir)).toBe(31);
      expect(await readdir(path.join(targetDir, 'chunks'), { recursive: true })).toEqual([]);
      expect((await readdir(path.join(targetDir, 'packs'), { recursive: true })).filter((n) => /[0-9a-f]{32}$/.test(n)).length).toBeLessThan(8);
    } finally {
      await target.close();
      await chunks.close();
      await store.close();
    }
    const dest = path.join(ws.dir, 'restored');
    await mkdir(dest);
    const destChunks = await openChunkStore({ kind: 'fs', root: dest });
    const dbPath = path.join(dest, 'metadata.sqlite');
    const t = await openDirTarget(targetDir, { create: false });
    try {
      const r = await restoreSnapshot(t, await findSnapshot(t), {
        description: dest, chunks: destChunks, markerFile: path.join(dest, 'restore-in-progress.json'),
        openStore: () => openMetadataStore({ kind: 'sqlite', path: dbPath }),
        wipeStore: async () => undefined,
      });
      expect(r).toMatchObject({ files: 31, chunksCopied: 31 });
      expect(await chunksOnDisk(dest)).toBe(31);
      expect((await readdir(path.join(dest, 'packs'), { recursive: true })).filter((n) => /[0-9a-f]{32}$/.test(n)).length).toBeLessThan(8);
      expect(await readdir(path.join(dest, 'chunks'), { recursive: true })).toEqual([]);
    } finally {
      await t.close();
      await destChunks.close();
    }
    const restored = await serveVault(dest);
    try {
      for (const [p, bytes] of files) expect((await ws.get(restored, p)).equals(bytes), p).toBe(true);
    } finally {
      await restored.close();
    }
  }, 120_000);
});
