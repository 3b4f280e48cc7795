// Vault paths: parsing and validation of the absolute, '/'-separated paths users name files by.
// Names are compared byte-exactly (no Unicode normalisation); see docs/vault.md "Paths".
import { CofferError, ErrorCode } from '../errors.js';
import { isWellFormed } from '../unicode.js';

export const MAX_PATH_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 255;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;


function invalid(message: string): CofferError {
  return new CofferError(ErrorCode.INVALID_PATH, message);
}

/** Checks one name (a single path segment). Throws INVALID_PATH. */
export function checkName(name: string): void {
  if (name.length === 0) throw invalid('empty path segment');
  if (name === '.' || name === '..') throw invalid(`path segment "${name}" is not allowed`);
  if (name.includes('/')) throw invalid('a name cannot contain "/"');
  if (CONTROL.test(name)) throw invalid('path contains NUL or a control character');
  if (!isWellFormed(name)) throw invalid('path is not well-formed Unicode (a lone surrogate)');
  if (Buffer.byteLength(name, 'utf8') > MAX_SEGMENT_BYTES) throw invalid(`path segment longer than ${MAX_SEGMENT_BYTES} bytes`);
}

/**
 * Splits an absolute path into its segments ('/' → []). Refuses relative paths, empty segments ('//' or a
 * trailing '/'), '.', '..', NUL and control characters, segments over 255 bytes and paths over 4096 bytes.
 * A backslash is an ordinary character. Throws INVALID_PATH.
 */
export function parsePath(path: unknown): string[] {
  if (typeof path !== 'string') throw invalid('path must be a string');
  if (!path.startsWith('/')) throw invalid('path must be absolute (start with "/")');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw invalid(`path longer than ${MAX_PATH_BYTES} bytes`);
  if (path === '/') return [];
  const segments = path.slice(1).split('/');
  for (const s of segments) checkName(s);
  return segments;
}

/** The path string of a list of segments. */
export function formatPath(segments: readonly string[]): string {
  return '/' + segments.join('/');
}

/** Joins a directory path and a child name. */
export function childPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
