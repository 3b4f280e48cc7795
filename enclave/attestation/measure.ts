// PCR measurement of an enclave code bundle for the simulated NSM (docs/attestation.md, "PCR0 recipe").
// PCR0 = SHA-384 over the canonical listing of every regular file under the bundle directory: one line per
// file, sorted by the bytes of its UTF-8 relative path (POSIX separators), each line
//   <path> NUL <size in decimal> NUL <lowercase hex SHA-384 of the content> LF
// Symlinks, devices, sockets and names with a newline are refused, so the listing is unambiguous and anyone
// can recompute it with sha384sum or a few lines of Python. Files are hashed as streams (bounded memory).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CofferError, ErrorCode } from '../../src/errors.js';

/** PCR1 of the simulated NSM: SHA-384 of this ASCII string marks a simulated (not Nitro) boot. */
export const SIMULATED_PCR1_INPUT = 'coffer-simulated-nsm-v1';

export interface BundleMeasurement {
  /** SHA-384 of the canonical listing (lowercase hex, 96 digits). */
  pcr0: string;
  /** SHA-384 of SIMULATED_PCR1_INPUT. */
  pcr1: string;
  /** Equal to pcr0: the simulated enclave's application is the bundle itself. */
  pcr2: string;
  /** Number of files measured. */
  files: number;
  /** The canonical listing that pcr0 hashes. */
  listing: string;
}

const sha384 = (data: string | Uint8Array): string => createHash('sha384').update(data).digest('hex');

async function collect(root: string, rel: string, out: string[]): Promise<void> {
  const entries = await readdir(rel === '' ? root : join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    const path = rel === '' ? e.name : `${rel}/${e.name}`;
    if (path.includes('\n')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bundle file name with a newline cannot be measured: ${JSON.stringify(path)}`);
    if (e.isDirectory()) await collect(root, path, out);
    else if (e.isFile()) out.push(path);
    else throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bundle may hold only regular files and directories; refusing ${path}`);
  }
}

/** Size and SHA-384 of one file, both from the same read (a file changing meanwhile cannot mismatch them). */
async function hashFile(path: string): Promise<{ size: number; digest: string }> {
  const h = createHash('sha384');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, digest: h.digest('hex') };
}

/**
 * Measures an enclave code bundle. Throws CofferError INVALID_ARGUMENT (not a directory, empty, or holding
 * something other than regular files and directories) or NOT_FOUND.
 */
export async function measureEnclaveBundle(dir: string): Promise<BundleMeasurement> {
  let st;
  try {
    st = await lstat(dir);
  } catch {
    throw new CofferError(ErrorCode.NOT_FOUND, `enclave bundle ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `enclave bundle ${dir} is not a directory`);
  const files: string[] = [];
  await collect(dir, '', files);
  if (files.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `enclave bundle ${dir} is empty`);
  return measureFiles(dir, files);
}

/**
 * Measures the listed files (paths relative to `root`, POSIX separators) with the same recipe as a bundle
 * directory: the enclave code bundle (enclave/runtime/bundle.ts) is a file list, not a directory.
 */
export async function measureFiles(root: string, relativePaths: readonly string[]): Promise<BundleMeasurement> {
  const files = [...relativePaths];
  for (const f of files) {
    if (f.includes('\n')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bundle file name with a newline cannot be measured: ${JSON.stringify(f)}`);
  }
  files.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  let listing = '';
  for (const f of files) {
    const { size, digest } = await hashFile(join(root, f));
    listing += `${f}\0${size}\0${digest}\n`;
  }
  const pcr0 = sha384(listing);
  return { pcr0, pcr1: sha384(SIMULATED_PCR1_INPUT), pcr2: pcr0, files: files.length, listing };
}
