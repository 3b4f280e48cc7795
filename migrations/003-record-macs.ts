// Migration 3: a `mac` column on the records the enclave integrity-protects — nodes, blobs, grants, users
// (docs/metadata.md "Record MACs"; the MAC format is docs/format.md "Metadata MAC v1"). Existing rows get NULL:
// no MAC, which the enclave treats as unverified (refused until it endorses the record), never as valid.
// MongoDB is schemaless: a document without the field reads as "no MAC", so its step has nothing to do.
import type { DatabaseSync } from 'node:sqlite';
import type { Migration } from './types.js';

const TABLES = ['nodes', 'blobs', 'grants', 'users'] as const;

function hasColumn(db: DatabaseSync, table: string, column: string): boolean {
  return (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as unknown as Array<{ name: string }>).some((c) => c.name === column);
}

export const migration003: Migration = {
  version: 3,
  name: 'record MACs: a mac column on nodes, blobs, grants and users',
  sqlite(db) {
    // ALTER TABLE has no IF NOT EXISTS for columns: look first, so a re-run after a crash is a no-op
    for (const table of TABLES) if (!hasColumn(db, table, 'mac')) db.exec(`ALTER TABLE ${table} ADD COLUMN mac TEXT`);
  },
  async mongo() {
    // nothing to create: absent fields read as null
  },
};
