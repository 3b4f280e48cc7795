// Joined parts (docs/s3-api.md "Multipart: how parts become sealed chunks", "Joined parts"): equal staged parts
// whose length s is not a multiple of 8 MiB (rclone's 5 MiB) are joined into the upload's placed blob **while the
// upload goes on**, instead of all at Complete. Part n holds object bytes [(n-1)·s, n·s), so once parts 1..m are
// staged (each verified, durable, a sealed vault file), chunks 0 … ⌊m·s / 8 MiB⌋-1 are known; a background joiner
// (one per upload per enclave, in order) reads those staged parts back and seals the chunks into the blob, then
// Complete seals only what lies after the last joined chunk. Entries in the staging directory (names bound by
// the node MACs; upload-staging.ts):
//   a<first chunk, 7 digits>                       claim (directory, made exclusively) of the chunks from there on
//   j<first, 7>-<end, 7>-<hash, 16 hex>            joined record: chunks first … end-1 hold the parts that `hash`
//                                                  names (SHA-256 of JSON [s, [[n, md5], …]] of every part they touch)
// A claim is made before any chunk of its range is sealed and every later range starts at the previous one's end,
// so each chunk index is sealed by exactly one joiner batch (or by the Complete that claims the end of the chain).
// Complete takes the joined way only when the chain from chunk 0 is whole, every record's hash names exactly the
// parts the client listed (number and MD5, so a part re-uploaded with other bytes after it was joined makes
// Complete fall back), and no claim lacks its record (a batch cut off by a crash or an error).
import { createHash } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import type { FileInfo, PlacedUpload, Principal, VaultBackend } from './backend.js';
import type { S3Context } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { CHUNK, joinClaimName, joinedName, readStaging, type JoinedRange, type Staging, type StoredPart, type UploadRecord } from './upload-staging.js';

/** Chunks sealed by one joiner batch at most (a claim and a record per batch: fewer calls; smaller: sooner done). */
const BATCH_CHUNKS = 8;
const KEEP_JOINERS = 64;
/** Staged parts' plaintext kept in enclave memory until joined, so the joiner need not read them back (all uploads). */
const HOLD_MAX = 128 * 1024 * 1024;
/** Parts longer than this are never held (they are read back from their staged files). */
const HOLD_PART_MAX = 16 * 1024 * 1024;
const IDLE_MS = 2 * 60_000;
let holding = 0;

/**
 * A staged part's bytes kept for the joiner: the request body's own pieces, in order, not copied (heldFrom). Only
 * a source that never reuses or changes a piece it gave out may be held this way: a request body (Node's socket
 * reads, and views of them), not a pooled reader.
 */
export interface HeldPart {
  readonly size: number;
  readonly pieces: Uint8Array[];
}

/**
 * Room for a staged part's bytes, kept for the joiner (see partStaged), or null when the part is not one the
 * joiner can use or the memory set aside for this is taken. Give it back with `releaseHeld` unless partStaged got it.
 */
export function holdPart(size: number): HeldPart | null {
  if (size === 0 || size > HOLD_PART_MAX || size % CHUNK === 0) return null;
  if (holding + size > HOLD_MAX) {
    // uploads left idle (never completed nor aborted) give their share back
    for (const j of joiners.values()) if (j.touched < Date.now() - IDLE_MS) forgetHeld(j);
    if (holding + size > HOLD_MAX) return null;
  }
  holding += size;
  return { size, pieces: [] };
}

/** Returns a held part's share of the memory (the pieces themselves go with the garbage: a batch may still read them). */
export function releaseHeld(bytes: HeldPart | undefined): void {
  if (bytes) holding -= bytes.size;
}

/**
 * `stream`, keeping a reference to every piece in `held` as it passes (no copy: see HeldPart for the sources this
 * is for). Pieces beyond `held.size` bytes are not kept (the store checks the length: a longer body fails there).
 */
export async function* heldFrom(stream: AsyncIterable<Uint8Array>, held: HeldPart): AsyncGenerator<Uint8Array> {
  let at = 0;
  for await (const p of stream) {
    if (at + p.length <= held.size) held.pieces.push(p);
    at += p.length;
    yield p;
  }
}

/** Bytes [start, end) of a held part, as views of its pieces. */
export function heldRange(held: HeldPart, start: number, end: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of held.pieces) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + p.length);
    if (from < to) out.push(p.subarray(from - at, to - at));
    at += p.length;
    if (at >= end) break;
  }
  return out;
}

/** What a joined range must name: every part (number, MD5) touching chunks first … end-1, parts being s long. */
function rangeHash(s: number, first: number, end: number, md5Of: (n: number) => string | undefined): string | null {
  const names: Array<[number, string]> = [];
  for (let n = Math.floor((first * CHUNK) / s) + 1; (n - 1) * s < end * CHUNK; n++) {
    const md5 = md5Of(n);
    if (md5 === undefined) return null;
    names.push([n, md5]);
  }
  return createHash('sha256').update(JSON.stringify([s, names])).digest('hex').slice(0, 16);
}

/** The plaintext bytes [from, to) of the object made of `parts` (part n = parts[n-1], each s long but the last), read from their staged files. */
async function* objectBytes(backend: VaultBackend, who: Principal, dir: string, parts: Array<Pick<StoredPart, 'name' | 'size' | 'blobId'> & { bytes?: HeldPart }>, s: number, from: number, to: number): AsyncGenerator<Uint8Array> {
  let pos = from;
  // the next part's read is opened while this one streams (one round trip less between parts)
  const open = (at: number): Promise<{ body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>; info: FileInfo }> => {
    const i = Math.floor(at / s);
    const p = parts[i];
    if (!p) return Promise.reject(new S3Error('InvalidPart', `part ${i + 1} is missing`));
    const start = at - i * s;
    const end = Math.min(p.size, to - i * s);
    // the part's verified bytes, held since its request (the same bytes its staged file holds)
    if (p.bytes) return Promise.resolve({ body: heldRange(p.bytes, start, end), info: { size: p.size } as FileInfo });
    return backend.read(who, `${dir}/${p.name}`, { start, end }, p.blobId ?? undefined);
  };
  let next = open(pos);
  while (pos < to) {
    const i = Math.floor(pos / s);
    const current = await next;
    const nextPos = Math.min(to, i * s + (parts[i] as { size: number }).size);
    if (current.info.size !== (parts[i] as { size: number }).size) throw new S3Error('InvalidPart', `part ${i + 1} changed during the completion`);
    if (nextPos < to) {
      next = open(nextPos);
      next.catch(() => undefined); // awaited on the next turn; an early rejection must not go unhandled
    }
    yield* current.body;
    pos = nextPos;
  }
}

interface KnownPart { name: string; md5: string; size: number; blobId: string | null; bytes?: HeldPart; /** Object offset after the part, if it is s long. */ end?: number }

function forgetHeld(j: Joiner, below = Infinity): void {
  for (const p of j.parts.values()) {
    if (p.bytes && (below === Infinity || (p.end !== undefined && p.end <= below))) {
      releaseHeld(p.bytes);
      delete p.bytes;
    }
  }
}

interface Joiner {
  who: Principal;
  backend: VaultBackend;
  blob: PlacedUpload;
  parts: Map<number, KnownPart>;
  /** Chunks 0 … frontier-1 are joined (records written by this joiner or read at its start). */
  frontier: number;
  loaded: boolean;
  off: boolean;
  dirty: boolean;
  running: Promise<void> | null;
  /** When a part last arrived. */
  touched: number;
}

const joiners = new Map<string, Joiner>();

/**
 * Tells the upload's joiner that a part was staged (after its rename to `p<n>-<md5>`), and lets it join what it
 * can in the background. Never throws; a joiner that meets any error or anything unusual stops for good (Complete
 * then seals more, or falls back).
 */
export function partStaged(backend: VaultBackend, who: Principal, dir: string, record: UploadRecord, number: number, part: KnownPart): void {
  if (!backend.placed || !record.blob) {
    releaseHeld(part.bytes);
    return;
  }
  part.end = number * part.size;
  let j = joiners.get(dir);
  if (!j) {
    j = { who, backend, blob: record.blob, parts: new Map(), frontier: 0, loaded: false, off: false, dirty: false, running: null, touched: Date.now() };
    joiners.set(dir, j);
    while (joiners.size > KEEP_JOINERS) {
      const [oldest, o] = joiners.entries().next().value as [string, Joiner];
      o.off = true; // an evicted joiner stops after its batch; Complete finds its chain in the records
      forgetHeld(o);
      joiners.delete(oldest);
    }
  }
  if (j.off) {
    releaseHeld(part.bytes);
    return;
  }
  releaseHeld(j.parts.get(number)?.bytes);
  j.parts.set(number, part);
  j.touched = Date.now();
  j.dirty = true;
  if (!j.running) {
    const joiner = j;
    joiner.running = run(dir, joiner).finally(() => {
      joiner.running = null;
    });
  }
}

/** A placed part arrived: joining stays off for this upload (its chunk indices are the placed parts'). */
export function partPlaced(dir: string): void {
  const j = joiners.get(dir);
  if (j) {
    j.off = true;
    forgetHeld(j);
  }
}

/** Stops the upload's joiner and waits for the batch it is sealing (Complete and Abort call this first). */
export async function stopJoining(dir: string): Promise<void> {
  const j = joiners.get(dir);
  if (!j) return;
  j.off = true;
  joiners.delete(dir);
  await j.running;
  forgetHeld(j);
}

async function run(dir: string, j: Joiner): Promise<void> {
  try {
    while (j.dirty && !j.off) {
      j.dirty = false;
      while (!j.off && await joinBatch(dir, j));
    }
  } catch {
    j.off = true;
  }
  if (j.off) forgetHeld(j);
}

/** Joins the next batch if its parts are there; false when there is nothing to do yet. */
async function joinBatch(dir: string, j: Joiner): Promise<boolean> {
  const { backend, who } = j;
  if (!j.loaded) {
    // parts and records written before this joiner (another enclave, an earlier process) are taken into account
    const staging = await readStaging(backend, who, dir);
    if (staging.claims.size > 0 || staging.geometry !== null || staging.plans.length > 0) {
      j.off = true;
      return false;
    }
    for (const p of staging.parts) if (p.chunks === undefined && !j.parts.has(p.number)) j.parts.set(p.number, { name: p.name, md5: p.md5, size: p.size, blobId: p.blobId ?? null });
    const chain = chainEnd(staging, () => true);
    if (chain === null) {
      j.off = true;
      return false;
    }
    j.frontier = chain;
    j.loaded = true;
  }
  const first = j.parts.get(1);
  if (!first) return false;
  const s = first.size;
  if (s === 0 || s % CHUNK === 0) {
    j.off = true; // whole chunks: the placed way's, not ours
    return false;
  }
  // the parts after the frontier that are there, consecutive, all s long
  let n = Math.floor((j.frontier * CHUNK) / s) + 1;
  while (j.parts.get(n)?.size === s) n++;
  const end = Math.min(Math.floor(((n - 1) * s) / CHUNK), j.frontier + BATCH_CHUNKS);
  if (end <= j.frontier) return false;
  const start = j.frontier;
  const snapshot = new Map(j.parts);
  const hash = rangeHash(s, start, end, (k) => snapshot.get(k)?.md5) as string;
  try {
    await backend.mkdir(who, `${dir}/${joinClaimName(start)}`, false);
  } catch (e) {
    j.off = true; // claimed by someone else (another enclave, a Complete): this joiner has no business there
    if (isCofferError(e) && e.code === 'ALREADY_EXISTS') return false;
    throw e;
  }
  const parts: KnownPart[] = [];
  for (let k = 1; k < n; k++) parts.push(snapshot.get(k) ?? { name: '', md5: '', size: s, blobId: null });
  await (backend.placed as NonNullable<VaultBackend['placed']>).seal(who, j.blob, start, objectBytes(backend, who, dir, parts, s, start * CHUNK, end * CHUNK), (end - start) * CHUNK, false);
  await backend.mkdir(who, `${dir}/${joinedName(start, end, hash)}`, false);
  j.frontier = end;
  forgetHeld(j, end * CHUNK); // parts wholly joined
  return true;
}

/**
 * The end (in chunks) of the whole chain of joined records from chunk 0 whose ranges `accept`, or null when
 * the staging holds a claim without its record or a claim or record off the chain (the joined way is then not
 * safe) — but for a claim at the chain's end when `ownTail(end)` says it is this Complete's own earlier one.
 */
function chainEnd(staging: Staging, accept: (r: JoinedRange) => boolean, ownTail: (end: number) => boolean = () => false): number | null {
  let end = 0;
  const byFirst = new Map<number, JoinedRange[]>();
  for (const r of staging.joins) byFirst.set(r.first, [...(byFirst.get(r.first) ?? []), r]);
  const used = new Set<number>();
  for (;;) {
    const candidates = byFirst.get(end) ?? [];
    if (candidates.length !== 1 || !staging.joinClaims.has(end)) break;
    const r = candidates[0] as JoinedRange;
    if (!accept(r)) break;
    used.add(end);
    end = r.end;
  }
  for (const c of staging.joinClaims) if (!used.has(c) && !(c === end && ownTail(end))) return null;
  for (const r of staging.joins) if (!used.has(r.first)) return null;
  return end;
}

export interface JoinedPlan {
  s: number;
  /** Chunks 0 … joined-1 hold the joined parts; Complete seals from there. */
  joined: number;
  parts: StoredPart[];
  size: number;
  chunkCount: number;
  marker: string;
}

/**
 * The joined plan, or null when the parts do not fit it: parts 1..N, all staged, all s long (s not a multiple of
 * 8 MiB) but the last (1 … s bytes); no placed part, claim or geometry; the chain of joined records from chunk 0
 * whole, each naming exactly the listed parts, ending within the object, and no claim or record off it; no
 * completion marker of another plan.
 */
export function joinedPlan(record: UploadRecord, chosen: StoredPart[], staging: Staging): JoinedPlan | null {
  if (!record.blob || chosen.length < 2) return null;
  const s = (chosen[0] as StoredPart).size;
  if (s === 0 || s % CHUNK === 0) return null;
  for (const [i, p] of chosen.entries()) {
    if (p.number !== i + 1 || p.chunks !== undefined) return null;
    if (i < chosen.length - 1 ? p.size !== s : p.size < 1 || p.size > s) return null;
  }
  if (staging.claims.size > 0 || staging.geometry !== null || staging.parts.some((p) => p.chunks !== undefined)) return null;
  const size = chosen.reduce((t, p) => t + p.size, 0);
  const chunkCount = Math.ceil(size / CHUNK);
  const md5Of = (n: number): string | undefined => {
    const p = chosen[n - 1];
    return p && p.size === s ? p.md5 : undefined; // a record never names the short last part
  };
  const markerOf = (joined: number): string => `f${createHash('sha256').update(JSON.stringify(['joined', s, joined, chosen.map((p) => [p.name, p.blobId ?? null])])).digest('hex').slice(0, 16)}`;
  // a claim at the chain's end is a retried Complete's own when its plan's marker (made after that claim) is there
  const joined = chainEnd(staging, (r) => r.end <= chunkCount && rangeHash(s, r.first, r.end, md5Of) === r.hash, (end) => staging.plans.includes(markerOf(end)));
  if (joined === null || joined === 0) return null;
  const marker = markerOf(joined);
  if (staging.plans.some((m) => m !== marker)) return null;
  return { s, joined, parts: chosen, size, chunkCount, marker };
}

/**
 * Seals what follows the joined chunks (FINAL on the object's last chunk) into the placed blob, under a claim of
 * the chain's end made exclusively (so no joiner and no other Complete seals there), then the plan's marker.
 * Returns false, having sealed nothing, when that claim is someone else's (the caller falls back). A Complete
 * retried after its commit gets UPLOAD_STATE from the storage service, which the caller treats as done.
 */
export async function sealJoinedTail(ctx: S3Context, dir: string, blob: PlacedUpload, plan: JoinedPlan, staging: Staging): Promise<boolean> {
  const { backend, who } = ctx;
  const placed = backend.placed as NonNullable<VaultBackend['placed']>;
  try {
    await backend.mkdir(who, `${dir}/${joinClaimName(plan.joined)}`, false);
  } catch (e) {
    if (!(isCofferError(e) && e.code === 'ALREADY_EXISTS')) throw toS3Error(e);
    if (!staging.plans.includes(plan.marker)) return false; // not our own earlier attempt (its marker comes after its claim)
  }
  await backend.mkdir(who, `${dir}/${plan.marker}`, false).catch((e: unknown) => { if (!isCofferError(e) || e.code !== 'ALREADY_EXISTS') throw toS3Error(e); });
  const from = plan.joined * CHUNK;
  if (from >= plan.size) {
    // every chunk was joined: the last one again, now FINAL (the not-FINAL copy can never be read as the last)
    await placed.seal(who, blob, plan.chunkCount - 1, placed.read(who, blob, plan.chunkCount - 1, 1), CHUNK, true);
  } else {
    await placed.seal(who, blob, plan.joined, objectBytes(backend, who, dir, plan.parts, plan.s, from, plan.size), plan.size - from, true);
  }
  return true;
}
