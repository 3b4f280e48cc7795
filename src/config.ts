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

/**
 * COFFER_DIRECT_IO: `auto` (default: O_DIRECT chunk I/O where a probe at start shows the filesystem takes it),
 * `on` (require it) or `off` (always through the page cache). Throws INVALID_ARGUMENT for other values.
 */
export function directIoSetting(value = process.env.COFFER_DIRECT_IO): boolean | undefined {
  switch ((value ?? 'auto').trim().toLowerCase()) {
    case 'auto':
    case '':
      return undefined;
    case 'on':
      return true;
    case 'off':
      return false;
    default:
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `COFFER_DIRECT_IO must be auto, on or off, not "${value ?? ''}"`);
  }
}
