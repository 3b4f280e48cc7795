// vitest global setup: starts the shared test servers once per run (see test/servers/README.md) and hands
// their addresses to the tests through vitest's provide/inject.
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URI of a MongoDB-wire server for the contract suite, or null when none could be started. */
    mongoUri: string | null;
    /** Why no MongoDB-wire server is available (null when mongoUri is set). */
    mongoUnavailableReason: string | null;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const teardowns: Array<() => Promise<void>> = [];
  // Filled in by test/servers (MongoDB-wire server): until then no server is available.
  project.provide('mongoUri', process.env.COFFER_TEST_MONGODB_URI ?? null);
  project.provide('mongoUnavailableReason', process.env.COFFER_TEST_MONGODB_URI ? null : 'no MongoDB-wire test server configured');
  return async () => {
    for (const t of teardowns.reverse()) await t();
  };
}
