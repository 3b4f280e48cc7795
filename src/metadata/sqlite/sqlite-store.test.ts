// Runs the MetadataStore contract against SqliteMetadataStore (a fresh database file per test), plus the
// SQLite-specific settings: WAL, synchronous, busy_timeout, file mode, and constraint-error mapping.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { runMetadataStoreContract } from '../contract.case.js';
import { openMetadataStore } from '../index.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-sqlite-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runMetadataStoreContract('sqlite', async () => {
  const path = join(dir, `t${++n}`, 'meta.db');
  const store = await openMetadataStore({ kind: 'sqlite', path });
  return { store, cleanup: () => store.close() };
});

describe('SqliteMetadataStore settings', () => {
  it('uses WAL, the chosen synchronous level, a busy timeout, and a 0600 file', async () => {
    const path = join(dir, 'settings', 'meta.db');
    const store = await openMetadataStore({ kind: 'sqlite', path, synchronous: 'full', busyTimeoutMs: 1234 });
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      const names = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all().map((r) => r.name);
      expect(names).toEqual(['blobs_state_updated', 'nodes_blob', 'nodes_parent_name']);
    } finally {
      db.close();
    }
    // synchronous and busy_timeout are per connection: check them on a live store's own handle
    const live = await openMetadataStore({ kind: 'sqlite', path, synchronous: 'full', busyTimeoutMs: 1234 });
    await live.runMigration(1, (h) => {
      expect(h.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 2 }); // FULL
      expect(h.prepare('PRAGMA busy_timeout').get()).toEqual({ timeout: 1234 });
    });
    await live.close();
  });

  it('reports a locked database as retryable METADATA', async () => {
    const path = join(dir, 'locked', 'meta.db');
    const store = await openMetadataStore({ kind: 'sqlite', path, busyTimeoutMs: 10 });
    const other = new DatabaseSync(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const e = await store.ensureUser('x').catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'METADATA', retryable: true });
    } finally {
      other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });
});
