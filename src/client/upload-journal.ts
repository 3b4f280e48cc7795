// The client's record of uploads in progress, so that running the same `coffer put` again after it was killed
// outright (SIGKILL, a reboot, a closed laptop) continues the upload instead of starting it over: the blob id
// exists only on the service and in this record. One small JSON file per (service, vault path, local file) under
// $COFFER_STATE_DIR/uploads, else $XDG_STATE_HOME/coffer/uploads, else ~/.local/state/coffer/uploads; written
// when the service has the upload, removed when it is committed or abandoned. It holds no secret: a blob id and
// two paths. Best effort throughout: a journal that cannot be read or written never fails an upload.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { processIsGone, processTag } from './local-process.js';

const BLOB_ID = /^[0-9a-f]{32}$/;

/** The journal entry of one upload: what `put` needs to find it again, and which process is sending it. */
export interface JournalEntry {
  blobId: string;
  server: string;
  path: string;
  local: string;
  startedAt: string;
  /** The put sending it (local-process.ts): while that process runs, the upload is its, not to be continued. */
  tag: string;
  pid: number;
}

/** One upload's place in the journal (uploadFile's `journal` option). */
export interface UploadRecord {
  /**
   * The blob id of an unfinished upload of this file to this path, if one was recorded and the put that was
   * sending it has ended (a put of the same file still running keeps its upload to itself).
   */
  recall(): Promise<string | null>;
  remember(blobId: string): Promise<void>;
  /** Removes the record if it still names `blobId` (another put may have recorded its own upload since). */
  forget(blobId: string): Promise<void>;
}

export function defaultJournalDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.COFFER_STATE_DIR) return path.join(env.COFFER_STATE_DIR, 'uploads');
  const state = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'coffer', 'uploads');
}

export class UploadJournal {
  constructor(readonly dir: string = defaultJournalDir()) {}

  /** The record of uploading `local` (resolved to an absolute path) to `vaultPath` on `server`. */
  recordFor(server: string, vaultPath: string, local: string): UploadRecord {
    const localPath = path.resolve(local);
    const file = path.join(this.dir, `${createHash('sha256').update(JSON.stringify([server, vaultPath, localPath])).digest('hex').slice(0, 32)}.json`);
    return {
      recall: async () => {
        const e = await read();
        if (!e) return null;
        const running = e.tag === processTag() && typeof e.pid === 'number' && e.pid !== process.pid && !processIsGone(e.pid);
        return running ? null : e.blobId;
      },
      remember: async (blobId) => {
        const entry: JournalEntry = {
          blobId, server, path: vaultPath, local: localPath, startedAt: new Date().toISOString(), tag: processTag(), pid: process.pid,
        };
        const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
        try {
          await mkdir(this.dir, { recursive: true, mode: 0o700 });
          await writeFile(temp, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
          await rename(temp, file);
        } catch {
          await unlink(temp).catch(() => undefined);
        }
      },
      forget: async (blobId) => {
        if ((await read())?.blobId === blobId) await unlink(file).catch(() => undefined);
      },
    };

    async function read(): Promise<JournalEntry | null> {
      try {
        const e = JSON.parse(await readFile(file, 'utf8')) as Partial<JournalEntry>;
        const same = e.server === server && e.path === vaultPath && e.local === localPath;
        return same && typeof e.blobId === 'string' && BLOB_ID.test(e.blobId) ? (e as JournalEntry) : null;
      } catch {
        return null; // none, or unreadable: a fresh upload
      }
    }
  }
}
