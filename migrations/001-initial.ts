// Migration 1: the initial schema (docs/metadata.md lists every table, collection and index and why).
// SQLite: names and ids are TEXT with the default BINARY collation, so comparisons and ORDER BY are byte
// order of the UTF-8 encoding, the same order MongoDB uses for strings. Dates are milliseconds since the epoch.
import type { Migration } from './types.js';

const SQLITE_DDL = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS nodes (
  id          TEXT PRIMARY KEY,
  parent_id   TEXT,
  name        TEXT NOT NULL,
  type        TEXT NOT NULL CHECK (type IN ('dir', 'file')),
  blob_id     TEXT,
  size        INTEGER NOT NULL,
  owner       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  modified_at INTEGER NOT NULL,
  version     INTEGER NOT NULL
);
-- one name per parent, and the index every listing and lookup by name walks
CREATE UNIQUE INDEX IF NOT EXISTS nodes_parent_name ON nodes (parent_id, name);
CREATE INDEX IF NOT EXISTS nodes_blob ON nodes (blob_id) WHERE blob_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS blobs (
  id             TEXT PRIMARY KEY,
  state          TEXT NOT NULL CHECK (state IN ('uploading', 'committed', 'deleting')),
  owner          TEXT NOT NULL,
  key_generation INTEGER NOT NULL,
  key_record     TEXT NOT NULL,
  size           INTEGER,
  chunk_count    INTEGER,
  chunk_sha256   TEXT,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  attrs          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_state_updated ON blobs (state, updated_at);

CREATE TABLE IF NOT EXISTS upload_chunks (
  blob_id          TEXT NOT NULL,
  idx              INTEGER NOT NULL,
  plaintext_length INTEGER NOT NULL,
  final            INTEGER NOT NULL,
  stored_size      INTEGER NOT NULL,
  sha256           TEXT NOT NULL,
  created_at       INTEGER NOT NULL,
  PRIMARY KEY (blob_id, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (
  name       TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  disabled   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS grants (
  node_id    TEXT NOT NULL,
  user       TEXT NOT NULL,
  role       TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (node_id, user)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit (
  seq       INTEGER PRIMARY KEY,
  at        INTEGER NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  target    TEXT NOT NULL,
  details   TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
`;

export const migration001: Migration = {
  version: 1,
  name: 'initial schema: tree, blobs, upload chunks, users, grants, audit',
  sqlite(db) {
    db.exec(SQLITE_DDL);
  },
  async mongo(db) {
    // _id carries the primary key everywhere it can (node id, blob id, user name, audit seq), so those are
    // unique without a second index. createIndex with the same spec is a no-op, so this step is idempotent.
    await db.collection('nodes').createIndex({ parentId: 1, name: 1 }, { unique: true, name: 'parent_name' });
    await db.collection('nodes').createIndex({ blobId: 1 }, { name: 'blob' });
    await db.collection('blobs').createIndex({ state: 1, updatedAt: 1 }, { name: 'state_updated' });
    await db.collection('uploadChunks').createIndex({ blobId: 1, index: 1 }, { unique: true, name: 'blob_index' });
    await db.collection('grants').createIndex({ nodeId: 1, user: 1 }, { unique: true, name: 'node_user' });
    // users (_id = name), audit (_id = seq) and meta (_id = key) need only their _id index; creating the
    // collections up front keeps a fresh database's layout explicit.
    const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
    for (const name of ['users', 'audit', 'meta']) {
      if (!existing.has(name)) await db.createCollection(name).catch(ignoreNamespaceExists);
    }
  },
};

/** createCollection races with another process running the same migration: "already exists" is success. */
function ignoreNamespaceExists(e: unknown): void {
  if ((e as { code?: number }).code === 48) return; // NamespaceExists
  throw e;
}
