// Public entry of the MongoDB metadata adapter (production; replica sets and sharded clusters).
export { MongoMetadataStore } from './mongo-store.js';
