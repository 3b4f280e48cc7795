// Test support (not a test file): the storage service on loopback over the real SQLite and fs stores in a
// temporary directory, with development-key auth, plus small HTTP helpers.
import { createLogger, createServiceMetrics } from '../telemetry/index.js';
import type { RootRole } from '../vault/index.js';
import { openTestVault, type TestVault } from '../vault/test-env.js';
import { createAuthenticator, mintDevToken } from './auth/index.js';
import { startStorageServer, type ServerLimits, type StorageServer } from './server.js';

export interface TestServer {
  url: string;
  env: TestVault;
  server: StorageServer;
  token(user: string, admin?: boolean): Promise<string>;
  close(): Promise<void>;
}

/** With `mongoUri` the metadata lives in a fresh database on that MongoDB-wire server, else in SQLite. */
export async function startTestServer(options: { defaultRootRole?: RootRole; limits?: ServerLimits; mongoUri?: string; gcIntervalMs?: number } = {}): Promise<TestServer> {
  const env = await openTestVault({ defaultRootRole: options.defaultRootRole ?? 'write', mongoUri: options.mongoUri });
  const auth = await createAuthenticator({ kind: 'dev', dataDir: env.dir });
  const server = await startStorageServer({
    vault: env.vault, auth, listen: { host: '127.0.0.1', port: 0 }, limits: options.limits,
    logger: createLogger({ level: 'silent' }), metrics: createServiceMetrics({ processMetrics: false }), gcIntervalMs: options.gcIntervalMs ?? 0,
  });
  return {
    url: server.url,
    env,
    server,
    token: (user, admin) => mintDevToken(env.dir, { user, admin }),
    async close() {
      await server.close();
      await env.close();
    },
  };
}

/** fetch with a bearer token; JSON bodies are serialised. */
export async function call(
  base: string, token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {},
): Promise<Response> {
  const h: Record<string, string> = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload: Uint8Array | string | undefined;
  if (body instanceof Uint8Array) {
    payload = body;
    h['content-type'] ??= 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  return fetch(base + path, { method, headers: h, body: payload });
}

/** The error code of a JSON error response (and checks it is one). */
export async function errorCode(res: Response): Promise<string> {
  const j = (await res.json()) as { error?: { code?: string } };
  return j.error?.code ?? `no error body (status ${res.status})`;
}
