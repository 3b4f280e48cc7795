// The `coffer` command as scripts and Unix users use it, through real processes against a real `coffer serve`:
// the exit-status table (README, --help, errors.ts agree), --json errors, local file problems with proper
// codes, pipes (`put -`, `get PATH -`), `get PATH` into the current directory, `mv X DIR`, what `rm` says, the
// data-directory lock (and its recovery after kill -9), and `kms serve` reading its own listen variable.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cliCommand, runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';
import { EXIT_STATUSES, exitCodeOf } from '../../src/errors.js';

// each test spawns many `coffer` processes (about a second each, more on a loaded machine)
vi.setConfig({ testTimeout: 240_000 });

const MiB = 1024 * 1024;
let work: string;
let dataDir: string;
let server: Awaited<ReturnType<typeof startServerProcess>>;
let env: NodeJS.ProcessEnv;

const coffer = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCliProcess(args, { ...env, ...extra });
async function ok(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await coffer(args, extra);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Runs coffer with `input` written to its standard input; collects stdout as bytes. */
function withStdin(args: string[], input: AsyncIterable<Buffer> | Buffer, opts: { cwd?: string; onChild?: (pid: number) => void } = {}) {
  const { command, args: cliArgs } = cliCommand();
  // tsx (when the sources run) resolved here, not from the child's working directory
  const pre = cliArgs.map((a) => (a === 'tsx' ? import.meta.resolve('tsx') : a));
  const child = spawn(command, [...pre, ...args], { cwd: opts.cwd, env: { ...process.env, COFFER_NO_PROGRESS: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  opts.onChild?.(child.pid as number);
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined); // the child may exit before reading everything
  void (async () => {
    if (Buffer.isBuffer(input)) child.stdin.end(input);
    else {
      for await (const piece of input) if (!child.stdin.write(piece)) await new Promise((r) => child.stdin.once('drain', r));
      child.stdin.end();
    }
  })();
  return {
    child,
    done: new Promise<{ code: number; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, stdout: Buffer.concat(out), stderr }))),
  };
}

/** Peak resident memory (VmHWM) of a running process, in bytes. */
function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-habits-'));
  dataDir = path.join(work, 'data');
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
  const keyFile = path.join(work, 'k.key');
  env = { COFFER_SERVER: server.url, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') };
  await ok(['keygen', '--out', keyFile]);
  env.COFFER_TOKEN = (await ok(['token', '--data-dir', dataDir, '--user', 'alice'])).trim();
}, 240_000);

afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the script contract', () => {
  it('one exit-status table: errors.ts, coffer --help and the README agree', async () => {
    const listed = new Set(EXIT_STATUSES.map((e) => e.status));
    for (const status of Object.values(exitCodeOf)) expect(listed.has(status)).toBe(true);
    const help = await ok(['--help']);
    for (const e of EXIT_STATUSES) expect(help).toContain(`${String(e.status).padStart(3)}  ${e.meaning}`);
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const e of EXIT_STATUSES) expect(readme).toContain(`| ${e.status} | ${e.meaning} |`);
  });

  it('--version and -V print the package version alone (and load no command to do it)', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await ok(['--version'])).toBe(`${version}\n`);
    expect(await ok(['-V'])).toBe(`${version}\n`);
  });

  it('with --json a failure is one JSON object on stderr and the exit status is unchanged', async () => {
    const plain = await coffer(['stat', '/no/such']);
    const json = await coffer(['stat', '/no/such', '--json']);
    expect(plain.code).toBe(3);
    expect(json.code).toBe(3);
    expect(json.stdout).toBe('');
    expect(json.stderr.endsWith('\n')).toBe(true);
    expect(json.stderr.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stderr)).toEqual({ error: { code: 'NOT_FOUND', message: expect.stringMatching(/\/no\/such/) } });
    // usage errors and unknown commands too
    const usage = await coffer(['stat', '--json', '--bogus']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stderr)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    const unknown = await coffer(['frobnicate', '--json']);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stderr)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/frobnicate/) } });
  });

  it('local file problems have their own codes and name the file, never INTERNAL', async () => {
    const missingDir = path.join(work, 'no-such-dir', 'k.key');
    const keygen = await coffer(['keygen', '--out', missingDir]);
    expect(keygen.code).toBe(3);
    expect(keygen.stderr).toBe(`coffer: cannot open ${missingDir}: no such file or directory [NOT_FOUND]\n`);
    await writeFile(path.join(work, 'plain-file'), 'x');
    const underFile = await coffer(['keygen', '--out', path.join(work, 'plain-file', 'k.key')]);
    expect(underFile.stderr).toMatch(/\[NOT_A_DIRECTORY\]\n$/);
    const exists = await coffer(['keygen', '--out', path.join(work, 'plain-file')]);
    expect(exists.code).toBe(4);
    expect(exists.stderr).not.toMatch(/INTERNAL/);
    const put = await coffer(['put', path.join(work, 'missing.bin'), '/missing.bin']);
    expect(put.code).toBe(3);
    expect(put.stderr).toMatch(/missing\.bin.*\[NOT_FOUND\]\n$/);
    const dir = await coffer(['put', work, '/w']);
    expect(dir.stderr).not.toMatch(/INTERNAL/);
    expect(dir.code).not.toBe(0);
  });
});

describe('pipes', () => {
  it('put - streams standard input of unknown size with flat memory; get PATH - streams it back verified', async () => {
    /** Pipes `total` bytes into `put - PATH`; returns the process's peak memory and the input's SHA-256. */
    async function pipeIn(vaultPath: string, total: number): Promise<{ peak: number; sha256: string; stdout: string }> {
      const seed = randomBytes(MiB);
      const hash = createHash('sha256');
      async function* source(): AsyncGenerator<Buffer> {
        for (let sent = 0; sent < total;) {
          const piece = Buffer.from(seed.subarray(0, Math.min(seed.length, total - sent)));
          piece[0] = sent & 0xff; // not the same megabyte over and over
          hash.update(piece);
          sent += piece.length;
          yield piece;
        }
      }
      let peak = 0;
      let timer: NodeJS.Timeout | undefined;
      const run = withStdin(['put', '-', vaultPath, '--json'], source(), {
        onChild: (pid) => { timer = setInterval(() => { peak = Math.max(peak, peakRss(pid)); }, 50); },
      });
      const r = await run.done;
      clearInterval(timer);
      expect(r.code, r.stderr).toBe(0);
      return { peak, sha256: hash.digest('hex'), stdout: r.stdout.toString() };
    }
    const small = await pipeIn('/piped-small.bin', 3 * 8 * MiB);
    const total = 160 * MiB + 12345;
    const big = await pipeIn('/piped.bin', total);
    expect(JSON.parse(big.stdout)).toMatchObject({ path: '/piped.bin', size: total, chunkCount: 21 });
    // memory does not grow with the input: 160 MiB more input, well under 100 MiB more memory
    expect(small.peak).toBeGreaterThan(0);
    expect(big.peak - small.peak).toBeLessThan(100 * MiB);

    const got = await withStdin(['get', '/piped.bin', '-'], Buffer.alloc(0)).done;
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout.length).toBe(total);
    expect(createHash('sha256').update(got.stdout).digest('hex')).toBe(big.sha256);
  }, 240_000);

  it('put - commits nothing when it is killed before the end of its input', async () => {
    let pid = 0;
    let reading: () => void = () => undefined;
    const started = new Promise<void>((r) => { reading = r; });
    async function* endless(): AsyncGenerator<Buffer> {
      // a pipe holds about 1 MiB: once 32 MiB have gone in, the upload is well under way
      for (let i = 0; i < 1_000_000; i++) {
        if (i === 32) reading();
        yield randomBytes(MiB);
      }
    }
    const run = withStdin(['put', '-', '/cut.bin'], endless(), { onChild: (p) => { pid = p; } });
    await started;
    process.kill(pid, 'SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/^coffer: interrupted \(SIGTERM\); nothing was committed; .*coffer uploads abort [0-9a-f]{32}\n$/);
    expect((await coffer(['stat', '/cut.bin'])).code).toBe(3);
  }, 240_000);

  it('get PATH - fails with the exit status when a later chunk is damaged, after the good chunks before it', async () => {
    const src = path.join(work, 'two-chunks.bin');
    const bytes = randomBytes(8 * MiB + 100);
    await writeFile(src, bytes);
    const put = JSON.parse(await ok(['put', src, '/two-chunks.bin', '--json'])) as { blobId: string };
    const chunk = path.join(dataDir, 'chunks', put.blobId.slice(0, 2), put.blobId.slice(2, 4), put.blobId, '00000001');
    const sealed = await readFile(chunk);
    sealed[60] = (sealed[60] as number) ^ 1;
    await writeFile(chunk, sealed);
    const got = await withStdin(['get', '/two-chunks.bin', '-', '--concurrency', '1'], Buffer.alloc(0)).done;
    expect(got.code).toBe(6);
    expect(got.stderr).toMatch(/\[CHUNK_AUTH_FAILED\]\n$/);
    expect(got.stdout.equals(bytes.subarray(0, 8 * MiB))).toBe(true); // what came before is out; nothing of the bad chunk
    expect(await ok(['get', '--help'])).toMatch(/cannot take bytes back/);
  }, 240_000);

  it('get PATH without a destination writes into the current directory under the vault name', async () => {
    const src = path.join(work, 'hello.txt');
    await writeFile(src, 'hello\n');
    await ok(['put', src, '/hello.txt']);
    const cwd = path.join(work, 'cwd');
    await mkdir(cwd);
    const r = await withStdin(['get', '/hello.txt'], Buffer.alloc(0), { cwd }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(cwd)).toEqual(['hello.txt']);
    expect(await readFile(path.join(cwd, 'hello.txt'), 'utf8')).toBe('hello\n');
  });
});

describe('Unix habits', () => {
  it('mv X DIR moves into an existing directory; rm says when the space comes back', async () => {
    const src = path.join(work, 'm.txt');
    await writeFile(src, 'm');
    await ok(['mkdir', '-p', '/mv/into']);
    await ok(['put', src, '/mv/m.txt']);
    await ok(['mv', '/mv/m.txt', '/mv/into']);
    expect(JSON.parse(await ok(['stat', '/mv/into/m.txt', '--json']))).toMatchObject({ type: 'file' });
    // a directory into a directory, as mv(1) does; a plain rename still renames
    await ok(['mkdir', '/mv/other']);
    await ok(['mv', '/mv/other', '/mv/into']);
    await ok(['mv', '/mv/into/m.txt', '/mv/into/renamed.txt']);
    expect(JSON.parse(await ok(['ls', '/mv/into', '--json'])).map((e: { name: string }) => e.name)).toEqual(['other', 'renamed.txt']);
    expect(await ok(['rm', '/mv/into/renamed.txt'])).toMatch(/^removed 1 entry; the service frees their space in a garbage-collection pass it starts within seconds\n$/);
    expect(JSON.parse(await ok(['rm', '-r', '/mv', '--json']))).toEqual({ removed: 3 });
  });

  it('a second service on the same data directory is refused; a kill -9 leaves no stuck lock', async () => {
    const second = await runCliProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(/^coffer: data directory .* is in use by another coffer service \(pid \d+ on this machine.*\[CONFLICT\]\n$/);
    const dir = path.join(work, 'crashed');
    const first = await startServerProcess(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
    expect(existsSync(path.join(dir, 'service.lock'))).toBe(true);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('close', r));
    const again = await startServerProcess(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
    expect((await runCliProcess(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0'])).code).toBe(4);
    await again.stop();
    expect(existsSync(path.join(dir, 'service.lock'))).toBe(false); // a clean stop removes it
  }, 240_000);

  it('kms serve listens on COFFER_KMS_LISTEN, not the storage service\'s COFFER_LISTEN', async () => {
    const child = spawnCli(['kms', 'serve', '--data-dir', path.join(work, 'kms')], { COFFER_LISTEN: '127.0.0.1:1', COFFER_KMS_LISTEN: '127.0.0.1:0' });
    const out = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout?.on('data', (d: Buffer) => {
        text += d.toString();
        if (/embedded KMS: http:\/\/127\.0\.0\.1:\d+/.test(text)) resolve(text);
      });
      child.on('close', (code) => reject(new Error(`kms serve exited ${code}: ${text}`)));
    });
    child.kill('SIGTERM');
    expect(out).not.toMatch(/127\.0\.0\.1:1\b/);
  }, 240_000);

  it('rm, mv and mkdir ride through a restart: a request that never reached the service is sent again', async () => {
    // a port where nothing listens yet (a service restarting), then a forwarder to the real service
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const target = new URL(server.url);
    const src = path.join(work, 'r.txt');
    await writeFile(src, 'r');
    await ok(['put', src, '/r.txt']);
    for (const args of [['mkdir', '/restart'], ['mv', '/r.txt', '/restart'], ['rm', '/restart/r.txt']]) {
      const child = spawnCli(args, { ...env, COFFER_SERVER: `http://127.0.0.1:${port}`, COFFER_DEBUG: '1' });
      let stderr = '';
      const refused = new Promise<void>((resolve) => child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/retrying \(attempt 2\) after: cannot reach .*ECONNREFUSED/.test(stderr)) resolve();
      }));
      const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
      await refused; // it was refused at least once: the "restart" is now over
      const forwarder = net.createServer((c) => {
        const up = net.connect(Number(target.port), target.hostname);
        c.pipe(up).pipe(c);
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
      });
      await new Promise<void>((resolve) => forwarder.listen(port, '127.0.0.1', resolve));
      try {
        expect(await exited, `coffer ${args.join(' ')}: ${stderr}`).toBe(0);
      } finally {
        forwarder.close();
        forwarder.unref();
      }
    }
    expect(JSON.parse(await ok(['ls', '/restart', '--json']))).toEqual([]);
  }, 240_000);
});
