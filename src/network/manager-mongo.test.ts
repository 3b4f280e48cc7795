// The network store suite on the MongoDB-wire test server (test/setup/global.ts): two clients to one
// database. Mandatory in CI: without a server this file fails there, and skips elsewhere.
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { afterAll, inject, it } from 'vitest';
import { openNetRecordStore } from '../metadata/netstore/index.js';
import { runNetworkStoreSuite } from './manager.case.js';

const uri = inject('mongoUri');
const base = `coffer_net_${randomBytes(4).toString('hex')}`;
let n = 0;

if (uri === null) {
  const reason = inject('mongoUnavailableReason') ?? 'no MongoDB-wire test server';
  if (process.env.CI === 'true') {
    it('network store suite on MongoDB (mandatory in CI)', () => {
      throw new Error(`the MongoDB network store suite must run in CI, but no server is available: ${reason}`);
    });
  } else {
    it.skip(`MongoDB network store suite skipped: ${reason}`, () => undefined);
  }
} else {
  const admin = new MongoClient(uri, { serverSelectionTimeoutMS: 15_000 });
  afterAll(() => admin.close());
  runNetworkStoreSuite('mongo', async () => {
    const dbName = `${base}_${++n}`;
    const config = { kind: 'mongo' as const, uri, dbName };
    const stores = [await openNetRecordStore(config), await openNetRecordStore(config)] as const;
    return {
      stores: [stores[0], stores[1]],
      cleanup: async () => {
        for (const s of stores) await s.close();
        await admin.db(dbName).dropDatabase();
      },
    };
  });
}
