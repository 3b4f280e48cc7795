// Migration 2: a `mac` column on the records the enclave integrity-protects — nodes, blobs, grants, users
// (docs/metadata.md "Record MACs"; the MAC format is docs/format.md "Metadata MAC v1"). Existing rows get NULL:
// no MAC, which the enclave treats as unverified (refused until it endorses the record), never as valid.
// MongoDB is schemaless: a document without the field reads as "no MAC", so its step has nothing to do.
import type BetterSqlite3 from 'better-sqlite3';
import type { Migration } from './types.js';

const TABLES = ['nodes', 'blobs', 'grants', 'users'] as const;

function hasColumn(db: BetterSqlite3.Database, table: string, column: string): boolean {
  return (db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as Array<{ name: string }>).some((c) => c.name === column);
}

export const migration002: Migration = {
  version: 2,
  name: 'record MACs: a mac column on nodes, blobs, grants and users',
  sqlite(db) {
    // ALTER TABLE has no IF NOT EXISTS for columns: look first, so a re-run after a crash is a no-op
    for (const table of TABLES) if (!hasColumn(db, table, 'mac')) db.exec(`ALTER TABLE ${table} ADD COLUMN mac TEXT`);
  },
  async mongo() {
    // nothing to create: absent fields read as null
  },
};
