// Opens the metadata of an existing vault for the commands that read it directly (`audit verify`, `fsck`):
// a wrong --data-dir is an error naming it, not a new empty database and a confusing "no such table".
import { existsSync } from 'node:fs';
import { metadataConfig } from '../config.js';
import { CofferError, ErrorCode } from '../errors.js';
import { openMetadataStore } from '../metadata/index.js';
import type { MetadataStore } from '../metadata/types.js';

/** Throws NOT_FOUND when there is no vault there (no SQLite file, or a store never migrated). */
export async function openVaultMetadata(dataDir: string, mongoUri?: string): Promise<MetadataStore> {
  const config = metadataConfig(dataDir, mongoUri);
  if (config.kind === 'sqlite' && !existsSync(config.path)) {
    throw new CofferError(ErrorCode.NOT_FOUND, `no vault in ${dataDir}: ${config.path} does not exist (check --data-dir or COFFER_DATA_DIR)`);
  }
  const store = await openMetadataStore(config, { migrate: false });
  if ((await store.getSchemaVersion()) === 0) {
    await store.close();
    const where = config.kind === 'sqlite' ? config.path : 'the MongoDB database';
    throw new CofferError(ErrorCode.NOT_FOUND, `no vault in ${where}: it has never been set up (start \`coffer serve\` or run \`coffer migrate up\`)`);
  }
  return store;
}
