// Public entry of the SQLite metadata adapter (the embedded default).
export { SqliteMetadataStore, type SqliteStoreOptions } from './sqlite-store.js';
