// Migration runner tests on both stores: a fresh store reaches the latest version, a re-run is a no-op, a
// half-run migration re-runs safely, and a store stamped newer than this code is refused (SCHEMA_TOO_NEW).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { expectCode } from './contract-helpers.case.js';
import { MongoMetadataStore } from './mongo/index.js';
import {
  LATEST_SCHEMA_VERSION, SqliteMetadataStore, migrateUp, migrationStatus, openMetadataStore,
  type MetadataConfig, type MigratableStore,
} from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const uri = inject('mongoUri');
const base = `coffer_mig_${randomBytes(4).toString('hex')}`;
let n = 0;

interface Kind {
  name: string;
  config: () => MetadataConfig;
  raw: (c: MetadataConfig) => Promise<MigratableStore>;
  stamp: (s: MigratableStore, v: number) => Promise<void>;
  drop: (s: MigratableStore) => Promise<void>;
}

const kinds: Kind[] = [
  {
    name: 'sqlite',
    config: () => ({ kind: 'sqlite', path: join(dir, `m${++n}.db`) }),
    raw: async (c) => SqliteMetadataStore.open((c as { path: string }).path),
    stamp: (s, v) => (s as SqliteMetadataStore).runMigration(v, () => undefined),
    drop: async () => undefined,
  },
];
if (uri !== null) {
  kinds.push({
    name: 'mongo',
    config: () => ({ kind: 'mongo', uri, dbName: `${base}_${++n}` }),
    raw: (c) => MongoMetadataStore.connect(uri, (c as { dbName: string }).dbName),
    stamp: (s, v) => (s as MongoMetadataStore).runMigration(v, async () => undefined),
    drop: (s) => (s as MongoMetadataStore).dropDatabase(),
  });
}

for (const k of kinds) {
  describe(`migrations on ${k.name}`, () => {
    it('brings a fresh store to the latest version; a re-run is a no-op', async () => {
      const config = k.config();
      const raw = await k.raw(config);
      expect(await migrationStatus(raw)).toEqual({
        current: 0, latest: LATEST_SCHEMA_VERSION,
        pending: migrations.map((m) => ({ version: m.version, name: m.name })),
      });
      expect(await migrateUp(raw)).toEqual(migrations.map((m) => m.version));
      expect(await migrateUp(raw)).toEqual([]);
      expect(await migrationStatus(raw)).toMatchObject({ current: LATEST_SCHEMA_VERSION, pending: [] });
      await raw.close();
      const store = await openMetadataStore(config);
      expect(await store.getSchemaVersion()).toBe(LATEST_SCHEMA_VERSION);
      await k.drop(store);
      await store.close();
    });

    it('re-runs a migration that half-ran, and never lowers the stamp', async () => {
      const raw = await k.raw(k.config());
      // every step ran but no stamp did (a crash in between): running the migrations again is safe
      for (const m of migrations) {
        if (raw instanceof SqliteMetadataStore) await raw.runMigration(0, (db) => m.sqlite(db));
        else await raw.runMigration(0, (db) => m.mongo(db));
      }
      expect(await migrateUp(raw)).toEqual(migrations.map((m) => m.version));
      await k.stamp(raw, 0);
      expect(await raw.getSchemaVersion()).toBe(LATEST_SCHEMA_VERSION);
      await raw.insertNode({ id: 'x', parentId: null, name: '', type: 'dir', blobId: null, size: 0, owner: 'a', createdAt: new Date(), modifiedAt: new Date(), version: 1, mac: 'cm1.x' });
      expect((await raw.getNode('x'))?.mac).toBe('cm1.x');
      await k.drop(raw);
      await raw.close();
    });

    it('refuses a store newer than this code with SCHEMA_TOO_NEW', async () => {
      const config = k.config();
      const raw = await k.raw(config);
      await migrateUp(raw);
      const future = LATEST_SCHEMA_VERSION + 2;
      await k.stamp(raw, future);
      const e = await expectCode(migrationStatus(raw), 'SCHEMA_TOO_NEW');
      expect(e.message).toBe(`metadata schema v${future} is newer than this Coffer (supports up to v${LATEST_SCHEMA_VERSION}): upgrade Coffer`);
      await expectCode(migrateUp(raw), 'SCHEMA_TOO_NEW');
      await expectCode(openMetadataStore(config), 'SCHEMA_TOO_NEW');
      await expectCode(openMetadataStore(config, { migrate: false }), 'SCHEMA_TOO_NEW');
      await k.drop(raw);
      await raw.close();
    });
  });
}

it('openMetadataStore with migrate: false leaves a new store at v0', async () => {
  const store = await openMetadataStore({ kind: 'sqlite', path: join(dir, 'nomig.db') }, { migrate: false });
  expect(await store.getSchemaVersion()).toBe(0);
  await store.close();
});
