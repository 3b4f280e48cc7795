// Tests the harness lifecycle: startMongoWireServer's ready/stop/error paths and the child's own rule that
// it exits when its stdin closes (so a crashed test run leaves no orphan server).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CofferError } from '../../src/errors.js';
import { MONGO_WIRE_BINARY, startMongoWireServer } from './mongo-wire.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'coffer-harness-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Resolves true when something accepts a TCP connection on host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('startMongoWireServer error paths', () => {
  it('reports a binary that cannot be spawned', async () => {
    const err = await startMongoWireServer({ dataDir: path.join(tmp, 'e1'), binary: path.join(tmp, 'missing') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CofferError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('could not be started') });
  });

  it('reports an early exit with the child stderr', async () => {
    const script = path.join(tmp, 'dies.sh');
    await writeFile(script, '#!/bin/sh\necho "no SQLite for you" >&2\nexit 3\n');
    await chmod(script, 0o755);
    const err = await startMongoWireServer({ dataDir: path.join(tmp, 'e2'), binary: script }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/exited before it was ready \(code 3.*no SQLite for you/s) });
  });

  it('times out a server that never gets ready, and kills it', async () => {
    const script = path.join(tmp, 'hangs.sh');
    const pidFile = path.join(tmp, 'hangs.pid');
    await writeFile(script, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 60\n`);
    await chmod(script, 0o755);
    const err = await startMongoWireServer({ dataDir: path.join(tmp, 'e3'), binary: script, readyTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('not ready within 500 ms') });
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(() => process.kill(pid, 0)).toThrow(); // gone
  });
});

describe.skipIf(!existsSync(MONGO_WIRE_BINARY))('ferretdb-harness process', () => {
  it('starts on a free port, serves the driver, and stops (idempotently)', async () => {
    const server = await startMongoWireServer({ dataDir: path.join(tmp, 'ok') });
    const url = new URL(server.uri);
    expect(url.protocol).toBe('mongodb:');
    expect(url.hostname).toBe('127.0.0.1');
    const client = new MongoClient(server.uri, { serverSelectionTimeoutMS: 5_000 });
    try {
      await client.db('h').collection('c').insertOne({ _id: 1 } as never);
      expect(await client.db('h').collection('c').countDocuments()).toBe(1);
    } finally {
      await client.close();
    }
    expect(existsSync(path.join(tmp, 'ok', 'h.sqlite'))).toBe(true);
    await server.stop();
    await server.stop();
    expect(await accepts(url.hostname, Number(url.port))).toBe(false);
  });

  it('exits by itself when its stdin closes', async () => {
    const child = spawn(MONGO_WIRE_BINARY, ['--dir', path.join(tmp, 'stdin')], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ready = await new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding('utf8');
      child.stdout.once('data', (s: string) => resolve(s));
      child.once('error', reject);
    });
    expect(ready).toMatch(/^READY mongodb:\/\/127\.0\.0\.1:\d+\/\n$/);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    expect(await exited).toBe(0);
    clearTimeout(timer);
  });

  it('refuses bad flags with a message and a non-zero exit', async () => {
    const child = spawn(MONGO_WIRE_BINARY, ['--listen', '127.0.0.1:0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(stderr).toContain('--dir is required');
  });
});
