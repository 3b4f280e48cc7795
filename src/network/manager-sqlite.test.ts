// The network store suite on SQLite: two connections (two node:sqlite handles) to one database file.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openNetRecordStore } from '../metadata/netstore/index.js';
import { runNetworkStoreSuite } from './manager.case.js';

runNetworkStoreSuite('sqlite', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-netstore-'));
  const config = { kind: 'sqlite' as const, path: path.join(dir, 'metadata.sqlite') };
  const stores = [await openNetRecordStore(config), await openNetRecordStore(config)] as const;
  return {
    stores: [stores[0], stores[1]],
    cleanup: async () => {
      for (const s of stores) await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
