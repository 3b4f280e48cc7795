// The narrow file interface the S3 layer needs from the enclave's plaintext vault access: the gateway's
// plaintext file module implements it inside the enclave (issue 9); vault-client-backend.ts implements it over
// the client library in key-file mode for development and tests. Every call acts as one vault user, so the
// vault's grants decide access exactly as on the native API.
//
// Errors are CofferErrors as the vault throws them (NOT_FOUND, PERMISSION_DENIED, ALREADY_EXISTS,
// IS_A_DIRECTORY, NOT_A_DIRECTORY, DIRECTORY_NOT_EMPTY, INVALID_PATH…); the S3 layer maps them.

export interface Principal {
  user: string;
  admin: boolean;
}

export interface FileInfo {
  path: string;
  name: string;
  type: 'dir' | 'file';
  size: number;
  /** The blob the file's content is (changes with every new content); null for directories. */
  blobId: string | null;
  modifiedAt: string;
}

export interface PutOptions {
  /** Replace an existing file (default false: ALREADY_EXISTS). */
  overwrite?: boolean;
}

/** A vault upload held open across requests (PlacedUploadOps.open); keep it where the host cannot edit it. */
export interface PlacedUpload {
  blobId: string;
  /** The wrapped data key, opaque here. */
  keyRecord: { scheme: string } & Record<string, unknown>;
}

/**
 * Vault uploads whose chunks the caller places by index (the zero-copy multipart: docs/s3-api.md "Multipart").
 * Optional: a backend without it makes every part go through a staged file.
 */
export interface PlacedUploadOps {
  /** Opens an upload that becomes the file at `path` (whose parent must exist) when committed. */
  open(who: Principal, path: string): Promise<PlacedUpload>;
  /** Seals exactly `size` bytes of `body` as chunks first, first+1, … (the last FINAL only with `endsBlob`); a chunk already there is replaced. */
  seal(who: Principal, upload: PlacedUpload, first: number, body: AsyncIterable<Uint8Array>, size: number, endsBlob: boolean): Promise<void>;
  /** The plaintext of full, not-FINAL chunks first … first+count-1 as stored now, each authenticated before it is yielded. */
  read(who: Principal, upload: PlacedUpload, first: number, count: number): AsyncIterable<Uint8Array>;
  /** Commits chunks 0..chunkCount-1 (`size` bytes) and binds the path. Idempotent. */
  commit(who: Principal, upload: PlacedUpload, chunkCount: number, size: number): Promise<FileInfo>;
  /** Abandons the upload. */
  abort(who: Principal, blobId: string): Promise<void>;
}

/**
 * A file opened for reading (VaultBackend.open): its info as it was opened, and reads of exactly that content
 * (a later replacement of the file does not change what is read). Close it when done: the data key is zeroed.
 */
export interface OpenedObject {
  info: FileInfo;
  /**
   * Plaintext bytes [start, end) (0 ≤ start ≤ end ≤ info.size) to `sink`, piece by piece in order, each piece
   * authenticated before any byte of it is given and valid only until the sink's promise settles (its memory is
   * reused then). Throws RANGE_NOT_SATISFIABLE, the chunk codes (nothing of a bad chunk reached the sink), the
   * storage service's errors and whatever the sink throws.
   */
  read(start: number, end: number, sink: (piece: Uint8Array) => Promise<void>): Promise<void>;
  /** Idempotent. */
  close(): void;
}

export interface VaultBackend {
  /** Present when the backend can place chunks by index (see PlacedUploadOps). */
  readonly placed?: PlacedUploadOps;
  /** Idempotent read. Throws NOT_FOUND. */
  stat(who: Principal, path: string): Promise<FileInfo>;
  /** One page of a directory, in byte order of names, strictly after `after`. */
  list(who: Principal, dir: string, options: { after?: string; limit: number }): Promise<{ items: FileInfo[]; next: string | null }>;
  /** With parents: every missing ancestor too (idempotent then). Throws ALREADY_EXISTS without parents. */
  mkdir(who: Principal, path: string, parents: boolean): Promise<FileInfo>;
  /** A file or an empty directory (recursive: a whole subtree). Throws NOT_FOUND, DIRECTORY_NOT_EMPTY. */
  remove(who: Principal, path: string, recursive: boolean): Promise<void>;
  /** Atomic rename within the vault (the content is not copied). */
  move(who: Principal, from: string, to: string, overwrite: boolean): Promise<FileInfo>;
  /**
   * Stores exactly `size` bytes read from `body` as the file at `path`; the file appears (or is replaced) only
   * when the whole body was read without error, atomically. A body that throws leaves nothing behind. The
   * parent directory must exist.
   */
  put(who: Principal, path: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, options?: PutOptions): Promise<FileInfo>;
  /**
   * The plaintext of bytes [start, end) of the file, authenticated chunk by chunk (a chunk that fails to open
   * ends the stream with an error before any of its bytes). `expectBlobId`: fail with PRECONDITION_FAILED if
   * the file's content is not that blob any more.
   */
  read(who: Principal, path: string, range?: { start: number; end: number }, expectBlobId?: string): Promise<{ info: FileInfo; body: AsyncIterable<Uint8Array> }>;
  /**
   * Opens a file for reading once (its records checked, its data key released): what a GET needs before its
   * first byte. Throws NOT_FOUND, IS_A_DIRECTORY, PERMISSION_DENIED, the KMS's errors.
   */
  open(who: Principal, path: string): Promise<OpenedObject>;
}
