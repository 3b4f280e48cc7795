// The MongoDB adapter, loaded on first use (dynamic import): the driver (mongodb, whatwg-url, …) costs about
// 0.1 s of wall time and 0.08 s of CPU at every command's start-up, which a SQLite vault never needs.
type MongoModule = typeof import('./mongo/index.js');

let loaded: MongoModule | null = null;

/** The adapter's module (MongoMetadataStore), imported once. */
export async function loadMongoAdapter(): Promise<MongoModule> {
  loaded ??= await import('./mongo/index.js');
  return loaded;
}

/**
 * The module if this process has loaded it, else null. ES modules are evaluated once, so a store made through
 * any import of it is an instance of this module's class once it is known here; import('./mongo/index.js')
 * elsewhere does not set it: callers that hold a store of unknown origin use loadMongoAdapter().
 */
export function loadedMongoAdapter(): MongoModule | null {
  return loaded;
}
