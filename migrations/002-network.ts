// Migration 2: the virtual network manager's records (docs/network.md, "Persistence"). One table / collection
// holds every kind of network record (host, network, port, IP and ofport claims, policy, egress rule, forward,
// apply lock) keyed by (kind, id): uniqueness that must hold under concurrency is always a key, so every
// decision is one single-record atomic write on both stores (docs/metadata.md, the single-document-write rule).
import type { Migration } from './types.js';

const SQLITE_DDL = `
CREATE TABLE IF NOT EXISTS net_records (
  kind    TEXT NOT NULL,
  id      TEXT NOT NULL,
  body    TEXT NOT NULL,
  version INTEGER NOT NULL,
  refs    INTEGER NOT NULL CHECK (refs >= 0),
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
`;

export const migration002: Migration = {
  version: 2,
  name: 'network manager records',
  sqlite(db) {
    db.exec(SQLITE_DDL);
  },
  async mongo(db) {
    // _id is "<kind>/<id>", so (kind, id) is unique without a second index; {kind, id} serves listing by kind.
    await db.collection('netRecords').createIndex({ kind: 1, id: 1 }, { name: 'kind_id' });
  },
};
