// Runs the MetadataStore contract against MongoMetadataStore on the MongoDB-wire test server that
// test/setup/global.ts provides. Mandatory in CI: without a server this file fails there, and skips elsewhere.
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { runMetadataStoreContract } from '../contract.case.js';
import { openMetadataStore } from '../index.js';
import { MongoMetadataStore } from './index.js';

const uri = inject('mongoUri');
const base = `coffer_ms_${randomBytes(4).toString('hex')}`;
let n = 0;

if (uri === null) {
  const reason = inject('mongoUnavailableReason') ?? 'no MongoDB-wire test server';
  if (process.env.CI === 'true') {
    it('MongoDB contract suite (mandatory in CI)', () => {
      throw new Error(`the MongoDB contract suite must run in CI, but no server is available: ${reason}`);
    });
  } else {
    it.skip(`MongoDB contract suite skipped: ${reason}`, () => undefined);
  }
} else {
  runMetadataStoreContract('mongo', async () => {
    const store = await openMetadataStore({ kind: 'mongo', uri, dbName: `${base}_${++n}` });
    return {
      store,
      cleanup: async () => {
        await store.dropDatabase();
        await store.close();
      },
    };
  });

  describe('MongoMetadataStore errors', () => {
    it('reports an unreachable server as retryable METADATA', async () => {
      const e = await MongoMetadataStore.connect('mongodb://127.0.0.1:9/', 'x', { serverSelectionTimeoutMS: 300 }).catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'METADATA', retryable: true });
    });
  });
}
