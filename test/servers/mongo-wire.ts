// Starts Coffer's MongoDB-wire test server (test/servers/ferretdb: FerretDB v1 over SQLite) as a child
// process, for the metadata contract suite. The child prints `READY mongodb://HOST:PORT/` when it accepts
// connections and exits when its stdin closes, so a test run that dies leaves no orphan server behind.
import { spawn, execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CofferError, ErrorCode } from '../../src/errors.js';

const serversDir = path.dirname(fileURLToPath(import.meta.url));

/** Where build-mongo-wire.sh puts the harness binary. */
export const MONGO_WIRE_BINARY = path.join(serversDir, 'bin', 'ferretdb-harness');
/** The build script (skips the build when the binary is up to date). */
export const MONGO_WIRE_BUILD_SCRIPT = path.join(serversDir, 'build-mongo-wire.sh');

/** How much of the child's stderr is kept for error messages. */
const STDERR_KEEP = 8 * 1024;

export interface MongoWireServer {
  /** mongodb:// URI of the running server (no database name; pick one per test). */
  readonly uri: string;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). Idempotent; never throws. */
  stop(): Promise<void>;
}

export interface StartMongoWireOptions {
  /** Directory for the SQLite files; created if missing. */
  dataDir: string;
  /** Harness binary (default MONGO_WIRE_BINARY). */
  binary?: string;
  /** How long to wait for the READY line (default 30 s). */
  readyTimeoutMs?: number;
}

/**
 * Builds the harness binary if it is missing or out of date (needs Go and the Go module proxy on a cold
 * machine; about a minute then, instant afterwards).
 * @throws CofferError UNAVAILABLE when the build fails (message carries the build's stderr tail).
 */
export async function buildMongoWireServer(timeoutMs = 15 * 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [MONGO_WIRE_BUILD_SCRIPT], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const tail = stderr.slice(-STDERR_KEEP).trim();
        const how = err.killed ? `killed after ${timeoutMs} ms` : `exit ${String(err.code)}`;
        reject(new CofferError(ErrorCode.UNAVAILABLE, `building the MongoDB-wire test server failed (${how})${tail ? `: ${tail}` : ''}`, { cause: err }));
        return;
      }
      resolve(stdout.trim().split('\n').at(-1) ?? MONGO_WIRE_BINARY);
    });
  });
}

/**
 * Spawns the harness on 127.0.0.1 with a free port and waits until it is ready.
 * @throws CofferError UNAVAILABLE when the binary cannot be spawned, exits early, or is not ready in time
 *   (the message includes the child's stderr).
 */
export async function startMongoWireServer(options: StartMongoWireOptions): Promise<MongoWireServer> {
  const binary = options.binary ?? MONGO_WIRE_BINARY;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  await mkdir(options.dataDir, { recursive: true });

  const child = spawn(binary, ['--listen', '127.0.0.1:0', '--dir', options.dataDir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  let closed = false;
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => {
      closed = true;
      resolve();
    }),
  );

  const stop = async (): Promise<void> => {
    if (closed || child.pid === undefined) return;
    child.stdin.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  const uri = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const fail = (why: string, cause?: unknown): void => {
      clearTimeout(timer);
      const tail = stderr.trim();
      reject(new CofferError(ErrorCode.UNAVAILABLE, `MongoDB-wire test server ${why}${tail ? `: ${tail}` : ''}`, { cause, details: { binary } }));
    };
    const timer = setTimeout(() => fail(`not ready within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once('error', (err) => fail(`could not be started (${err.message})`, err));
    child.once('exit', (code, signal) => fail(`exited before it was ready (code ${code}, signal ${signal})`));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      stdout += s;
      const m = /^READY (mongodb:\/\/\S+)$/m.exec(stdout);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });

  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout.resume();
  return { uri, stop };
}
