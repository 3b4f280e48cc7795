// vitest global setup: starts the shared test servers once per run (see docs/test-servers.md) and hands
// their addresses to the tests through vitest's provide/inject:
//   import { inject } from 'vitest'; const uri = inject('mongoUri'); // null → skip with inject('mongoUnavailableReason')
// MongoDB: COFFER_TEST_MONGODB_URI (a real MongoDB) wins; otherwise the FerretDB harness is built if needed
// and started on a free loopback port. S3: COFFER_TEST_S3_ENDPOINT wins; otherwise moto's server
// (test/servers/s3-server.ts). In CI (CI=true) a server that cannot start fails the run, never skips.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { buildMongoWireServer, startMongoWireServer } from '../servers/mongo-wire.js';
import { startS3TestServer } from '../servers/s3-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URI of a MongoDB-wire server for the contract suite, or null when none could be started. */
    mongoUri: string | null;
    /** Why no MongoDB-wire server is available (null when mongoUri is set). */
    mongoUnavailableReason: string | null;
    /** Endpoint of an S3-compatible server (moto; COFFER_TEST_S3_ENDPOINT wins), or null when none could be started. */
    s3Endpoint: string | null;
    /** Why no S3-compatible server is available (null when s3Endpoint is set). */
    s3UnavailableReason: string | null;
  }
}

type Teardown = () => Promise<void>;

/** Starts (or adopts) the MongoDB-wire server; returns its URI and pushes its teardown. */
async function startMongo(teardowns: Teardown[]): Promise<string> {
  const external = process.env.COFFER_TEST_MONGODB_URI;
  if (external) return external;
  const binary = await buildMongoWireServer();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'coffer-mongo-wire-'));
  teardowns.push(() => rm(dataDir, { recursive: true, force: true }));
  const server = await startMongoWireServer({ dataDir, binary });
  teardowns.push(() => server.stop());
  return server.uri;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const teardowns: Teardown[] = [];
  const teardown = async (): Promise<void> => {
    for (const t of teardowns.splice(0).reverse()) await t();
  };

  try {
    project.provide('mongoUri', await startMongo(teardowns));
    project.provide('mongoUnavailableReason', null);
  } catch (err) {
    await teardown();
    if (process.env.CI === 'true') throw err; // the MongoDB contract run is mandatory in CI
    const reason = err instanceof Error ? err.message : String(err);
    console.warn(`[test setup] MongoDB-wire tests will be skipped: ${reason}`);
    project.provide('mongoUri', null);
    project.provide('mongoUnavailableReason', reason);
  }

  try {
    const external = process.env.COFFER_TEST_S3_ENDPOINT;
    if (external) {
      project.provide('s3Endpoint', external);
    } else {
      const s3 = await startS3TestServer();
      teardowns.push(() => s3.stop());
      project.provide('s3Endpoint', s3.endpoint);
    }
    project.provide('s3UnavailableReason', null);
  } catch (err) {
    if (process.env.CI === 'true') {
      await teardown();
      throw err; // the S3 chunk store and backup target tests are mandatory in CI
    }
    const reason = err instanceof Error ? err.message : String(err);
    console.warn(`[test setup] S3 tests will be skipped: ${reason}`);
    project.provide('s3Endpoint', null);
    project.provide('s3UnavailableReason', reason);
  }
  return teardown;
}
