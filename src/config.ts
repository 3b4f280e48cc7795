// Configuration shared by the service, the CLI and the dev bundle: where data lives, which metadata store and
// which KMS to use, and what to listen on. Environment variables are listed in README.md "Configuration".
import path from 'node:path';
import { CofferError, ErrorCode } from './errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `HOST:PORT` or `[IPv6]:PORT`. Throws CofferError INVALID_ARGUMENT. */
export function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid listen address "${value}": expected HOST:PORT`);
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

export type MetadataConfig = { kind: 'sqlite'; path: string } | { kind: 'mongo'; uri: string; dbName?: string };

/** SQLite in the data directory unless a MongoDB URI is given (flag or COFFER_MONGODB_URI). */
export function metadataConfig(dataDir: string, mongoUri?: string): MetadataConfig {
  const uri = mongoUri ?? process.env.COFFER_MONGODB_URI;
  if (uri) return { kind: 'mongo', uri };
  return { kind: 'sqlite', path: path.join(path.resolve(dataDir), 'metadata.sqlite') };
}
