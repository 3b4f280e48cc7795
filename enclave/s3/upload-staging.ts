// What a multipart upload's staging directory `/<bucket>/.coffer-s3/uploads/<uploadId>/` holds, and reading it
// back (docs/s3-api.md "Multipart: how parts become sealed chunks"). Every entry is a vault node, so its name is
// bound by the enclave's record MACs: the host can hide an entry, never forge or rename one.
//   upload.json                 the upload record (sealed vault file): key, headers, and (v2) the placed upload
//   t<part>-<random>            a staged part being written (without Content-MD5; with it, straight to p<part>-<md5>)
//   p<part>-<md5>               a staged part (sealed vault file of the part's bytes)
//   c<part>                     claim (directory, made exclusively) of part's chunk range in the placed upload
//   d<part>-<chunks>-<md5>      placed part (directory): `chunks` × 8 MiB sealed at (part-1)·chunks in the blob
//   f<plan>                     completion marker (directory): a Complete sealed its tail under this plan
//   g/k<chunks>                 geometry (directories, `g` made exclusively): the one part length placed parts have
//   a<chunk>                    claim (directory, made exclusively) of joined chunks from `chunk` on (multipart-join.ts)
//   j<first>-<end>-<hash>       joined record (directory): chunks first … end-1 hold the parts `hash` names
import type { PlacedUpload, Principal, VaultBackend } from './backend.js';
import { isCofferError } from '../../src/errors.js';
import { toS3Error } from './errors.js';

export const UPLOAD_META = 'upload.json';
export const CHUNK = 8 * 1024 * 1024;

export interface UploadRecord {
  v: 1 | 2;
  key: string;
  initiated: string;
  initiator: string;
  headers: Record<string, string>;
  meta: Record<string, string>;
  /** v2: the vault upload whose chunks parts are sealed into (its key record kept here, sealed, not on the host). */
  blob?: PlacedUpload;
}

export interface StoredPart {
  number: number;
  md5: string;
  size: number;
  name: string;
  modifiedAt: string;
  /** A placed part: its chunk count (its first chunk is (number-1)·chunks); absent for a staged part file. */
  chunks?: number;
  /** A staged part's blob (its content), from the listing. */
  blobId?: string | null;
}

export interface Staging {
  /** Every part copy (placed and staged), unordered. */
  parts: StoredPart[];
  /** Part numbers whose chunk range was claimed in the placed upload (whether or not that part finished). */
  claims: Set<number>;
  /** Completion markers. */
  plans: string[];
  /** The placed parts' length in chunks, if exactly one was fixed (see geometryOf). */
  geometry: number | null;
  /** Joined ranges' claims (first chunk) and records (multipart-join.ts). */
  joinClaims: Set<number>;
  joins: JoinedRange[];
}

export interface JoinedRange { first: number; end: number; hash: string }

const pad7 = (n: number): string => String(n).padStart(7, '0');
export const joinClaimName = (first: number): string => `a${pad7(first)}`;
export const joinedName = (first: number, end: number, hash: string): string => `j${pad7(first)}-${pad7(end)}-${hash}`;

export const pad = (n: number): string => String(n).padStart(5, '0');
export const claimName = (n: number): string => `c${pad(n)}`;
export const placedName = (n: number, chunks: number, md5: string): string => `d${pad(n)}-${pad(chunks)}-${md5}`;
export const stagedName = (n: number, md5: string): string => `p${pad(n)}-${md5}`;

/** Reads the staging directory in pages. Throws the backend's errors (NOT_FOUND when the upload is gone). */
export async function readStaging(backend: VaultBackend, who: Principal, dir: string): Promise<Staging> {
  const out: Staging = { parts: [], claims: new Set(), plans: [], geometry: null, joinClaims: new Set(), joins: [] };
  let hasGeometry = false;
  let after: string | undefined;
  for (;;) {
    const page = await backend.list(who, dir, { after, limit: 1000 });
    for (const i of page.items) {
      let m: RegExpExecArray | null;
      if (i.type === 'file' && (m = /^p(\d{5})-([0-9a-f]{32})$/.exec(i.name))) {
        out.parts.push({ number: Number(m[1]), md5: m[2] as string, size: i.size, name: i.name, modifiedAt: i.modifiedAt, blobId: i.blobId });
      } else if (i.type === 'dir' && (m = /^d(\d{5})-(\d{5})-([0-9a-f]{32})$/.exec(i.name))) {
        const chunks = Number(m[2]);
        out.parts.push({ number: Number(m[1]), md5: m[3] as string, size: chunks * CHUNK, name: i.name, modifiedAt: i.modifiedAt, chunks });
      } else if (i.type === 'dir' && (m = /^c(\d{5})$/.exec(i.name))) {
        out.claims.add(Number(m[1]));
      } else if (i.type === 'dir' && /^f[0-9a-f]{16}$/.test(i.name)) {
        out.plans.push(i.name);
      } else if (i.type === 'dir' && (m = /^a(\d{7})$/.exec(i.name))) {
        out.joinClaims.add(Number(m[1]));
      } else if (i.type === 'dir' && (m = /^j(\d{7})-(\d{7})-([0-9a-f]{16})$/.exec(i.name)) && Number(m[1]) < Number(m[2])) {
        out.joins.push({ first: Number(m[1]), end: Number(m[2]), hash: m[3] as string });
      } else if (i.type === 'dir' && i.name === 'g') {
        hasGeometry = true;
      }
    }
    if (page.next === null) {
      if (hasGeometry) out.geometry = await readGeometry(backend, who, dir);
      return out;
    }
    after = page.next;
  }
}

/** The newest copy of each part number, by number. */
export function newestParts(parts: StoredPart[]): StoredPart[] {
  const newest = new Map<number, StoredPart>();
  for (const p of parts) {
    const prev = newest.get(p.number);
    if (!prev || p.modifiedAt > prev.modifiedAt || (p.modifiedAt === prev.modifiedAt && p.chunks === undefined)) newest.set(p.number, p);
  }
  return [...newest.values()].sort((a, b) => a.number - b.number);
}

// The upload record never changes once written (upload.json is written once, at Create), so the enclave keeps the
// ones it read: a part then costs no read (and no KMS Decrypt) of it. Keyed by staging path.
const records = new Map<string, UploadRecord>();
const KEEP_RECORDS = 256;

export async function readUpload(backend: VaultBackend, who: Principal, dir: string): Promise<UploadRecord> {
  const kept = records.get(`${who.user}\0${dir}`);
  if (kept) return kept;
  try {
    const { body } = await backend.read(who, `${dir}/${UPLOAD_META}`);
    const parts: Buffer[] = [];
    for await (const p of body) parts.push(Buffer.from(p));
    const record = JSON.parse(Buffer.concat(parts).toString('utf8')) as UploadRecord;
    remember(who, dir, record);
    return record;
  } catch (e) {
    throw toS3Error(e, 'NoSuchUpload');
  }
}

/** `created`: this enclave made the upload just now (so it knows every part number it stores from here on). */
export function remember(who: Principal, dir: string, record: UploadRecord, created = false): void {
  records.set(`${who.user}\0${dir}`, record);
  while (records.size > KEEP_RECORDS) records.delete(records.keys().next().value as string);
  if (created) {
    storedHere.set(dir, new Set());
    while (storedHere.size > KEEP_RECORDS) storedHere.delete(storedHere.keys().next().value as string);
  }
}

// Part numbers this enclave stored as staged files, per upload it made (a hint for skipping the listing of older copies).
const storedHere = new Map<string, Set<number>>();

/**
 * True when `number` is stored for the first time in an upload this enclave made (no older copy of it from this
 * enclave can exist); false when it may have one (seen before, or an upload made elsewhere or forgotten). Notes it.
 */
export function firstCopyHere(dir: string, number: number): boolean {
  const seen = storedHere.get(dir);
  if (!seen) return false;
  if (seen.has(number)) return false;
  seen.add(number);
  return true;
}

export function forgetUpload(dir: string): void {
  geometries.delete(dir);
  storedHere.delete(dir);
  for (const k of records.keys()) if (k.endsWith(`\0${dir}`)) records.delete(k);
}

const geometries = new Map<string, number>();

/** The `k<chunks>` under `g`, if exactly one is there (else null: placing is off for this upload). */
async function readGeometry(backend: VaultBackend, who: Principal, dir: string): Promise<number | null> {
  const page = await backend.list(who, `${dir}/g`, { limit: 3 });
  const ks = page.items.filter((i) => i.type === 'dir' && /^k\d{5}$/.test(i.name));
  return ks.length === 1 && page.items.length === 1 ? Number((ks[0] as { name: string }).name.slice(1)) : null;
}

/**
 * The one part length (in chunks) that parts of this upload are placed with: the first part to get here fixes
 * it to its own (`g` is made exclusively, then `g/k<chunks>`), so placed parts never overlap. Null when it
 * cannot be known (the part that made `g` did not finish fixing it within 2 s): that part is staged, which is
 * always safe.
 */
export async function geometryOf(backend: VaultBackend, who: Principal, dir: string, chunks: number): Promise<number | null> {
  const kept = geometries.get(dir);
  if (kept !== undefined) return kept;
  try {
    await backend.mkdir(who, `${dir}/g`, false);
    await backend.mkdir(who, `${dir}/g/k${pad(chunks)}`, false);
    geometries.set(dir, chunks);
    return chunks;
  } catch (e) {
    if (!isCofferError(e) || e.code !== 'ALREADY_EXISTS') throw e;
  }
  // the part that made `g` makes `g/k…` right after: parallel parts (the AWS CLI sends 10) wait for it a little
  let k: number | null = null;
  for (let i = 0; i < 40 && k === null; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50));
    k = await readGeometry(backend, who, dir);
  }
  if (k !== null) geometries.set(dir, k);
  while (geometries.size > KEEP_RECORDS) geometries.delete(geometries.keys().next().value as string);
  return k;
}
