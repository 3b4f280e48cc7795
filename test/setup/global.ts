// vitest global setup: starts the shared test servers once per run (see test/servers/README.md).
import type { TestProject } from 'vitest/node';

export default async function setup(_project: TestProject): Promise<() => Promise<void>> {
  const teardowns: Array<() => Promise<void>> = [];
  return async () => {
    for (const t of teardowns.reverse()) await t();
  };
}
