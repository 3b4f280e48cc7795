// backup create writes the metadata export while it copies the chunks (create.ts). When the copy finds a blob
// released meanwhile, the selection changes after that export began: the export must be written again for the
// final selection and the early one removed, so the snapshot's export, manifest and chunks agree (verify passes)
// and no orphan export is left. The release is made to happen exactly during the copy: the source store's read of
// that blob's chunk releases the blob in the metadata store first (real stores on both sides).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFsChunkStore, type ChunkRef, type FsChunkStore } from '../../storage-backend/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { openMetadataStore } from '../metadata/index.js';
import { createSnapshot, findSnapshot, openDirTarget, verifySnapshot } from './index.js';
import { serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

let ws: Workspace;
let vault: LiveVault;

beforeAll(async () => {
  ws = await workspace();
  vault = await serveVault(path.join(ws.dir, 'vault'));
  await ws.put(vault, '/a.bin', 60_000);
  await ws.put(vault, '/b.bin', 9 * 1024 * 1024); // two chunks, one of them a full 8 MiB chunk
}, 120_000);

afterAll(async () => {
  await vault?.close();
  await ws?.close();
});

describe('backup create and its early export', () => {
  it('writes the export again when a blob is released during the copy, and removes the early one', async () => {
    const store = await openMetadataStore({ kind: 'sqlite', path: path.join(vault.dataDir, 'metadata.sqlite') });
    const source = await openFsChunkStore({ root: vault.dataDir });
    const targetDir = path.join(ws.dir, 'target');
    const target = await openDirTarget(targetDir, { create: true });
    try {
      const a = (await store.listNodes({ limit: 100 })).items.find((n) => n.name === 'a.bin');
      const released = a?.blobId as string;
      expect(released).toMatch(/^[0-9a-f]{32}$/);
      const racing = Object.assign(Object.create(source) as FsChunkStore, {
        readInto: async (ref: ChunkRef, into: Buffer) => {
          if (ref.blobId !== released) return source.readInto(ref, into);
          // the file was overwritten and GC took its blob while the backup ran
          await store.updateBlob(released, 'committed', { state: 'deleting' });
          throw new CofferError(ErrorCode.NOT_FOUND, 'chunk not found');
        },
      });
      const r = await createSnapshot(store, racing, target);
      expect(r).toMatchObject({ files: 1, blobs: 1, chunks: 2 });
      expect(r.skipped.join('\n')).toMatch(/a\.bin/);
      const exports = await readdir(path.join(targetDir, 'metadata'));
      expect(exports).toHaveLength(1);
      const text = await readFile(path.join(targetDir, 'metadata', exports[0] as string), 'utf8');
      const lines = text.split('\n').filter((l) => l.includes(released));
      expect(lines.map((l) => (JSON.parse(l) as { type: string }).type).filter((t) => t !== 'audit')).toEqual([]); // audit entries may name it
      expect(text).toContain('"name":"b.bin"');
      expect(await verifySnapshot(target, await findSnapshot(target))).toMatchObject({ ok: true, problems: [] });
    } finally {
      await target.close();
      await source.close();
      await store.close();
    }
  }, 120_000);
});
