// Tests of the filesystem ChunkStore: the shared contract suite, then what only a filesystem has.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChunkStoreContract } from '../contract.case.js';
import { openFsChunkStore } from './index.js';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'coffer-fs-store-'));
}

runChunkStoreContract('fs', async () => {
  const root = await tempRoot();
  const store = await openFsChunkStore({ root });
  return { store, cleanup: () => rm(root, { recursive: true, force: true }) };
});
