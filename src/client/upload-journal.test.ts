import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultJournalDir, UploadJournal } from './upload-journal.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-journal-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('the upload journal', () => {
  it('remembers one upload per service, vault path and local file, privately, until it is forgotten', async () => {
    const journal = new UploadJournal(path.join(dir, 'uploads'));
    const a = journal.recordFor('http://h:1', '/x', 'rel/file.bin');
    expect(await a.recall()).toBeNull();
    await a.remember('ab'.repeat(16));
    expect(await a.recall()).toBe('ab'.repeat(16));
    expect(await journal.recordFor('http://h:1', '/x', path.resolve('rel/file.bin')).recall()).toBe('ab'.repeat(16)); // same file
    expect(await journal.recordFor('http://h:2', '/x', 'rel/file.bin').recall()).toBeNull();
    expect(await journal.recordFor('http://h:1', '/y', 'rel/file.bin').recall()).toBeNull();
    expect(await journal.recordFor('http://h:1', '/x', 'other.bin').recall()).toBeNull();
    expect((await stat(path.join(dir, 'uploads'))).mode & 0o777).toBe(0o700);
    const [file] = await readdir(path.join(dir, 'uploads'));
    expect((await stat(path.join(dir, 'uploads', file as string))).mode & 0o777).toBe(0o600);
    await a.forget('cd'.repeat(16)); // not the upload recorded: left alone
    expect(await a.recall()).toBe('ab'.repeat(16));
    await a.forget('ab'.repeat(16));
    expect(await a.recall()).toBeNull();
    expect(await readdir(path.join(dir, 'uploads'))).toEqual([]);
  });

  it('an upload that a put still running is sending is not recalled: only once that put has ended', async () => {
    const journal = new UploadJournal(path.join(dir, 'running'));
    const r = journal.recordFor('http://h', '/x', '/f');
    await r.remember('ab'.repeat(16));
    const [file] = await readdir(path.join(dir, 'running'));
    const entry = JSON.parse(await readFile(path.join(dir, 'running', file as string), 'utf8')) as { pid: number };
    expect(entry.pid).toBe(process.pid);
    expect(await r.recall()).toBe('ab'.repeat(16)); // this very process: its own record
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      await writeFile(path.join(dir, 'running', file as string), JSON.stringify({ ...entry, pid: sleeper.pid }));
      expect(await r.recall()).toBeNull(); // another put, still running
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((res) => sleeper.once('exit', res));
    }
    expect(await r.recall()).toBe('ab'.repeat(16)); // it was killed: its upload can be continued
  });

  it('a damaged entry is no upload, and an unwritable journal never fails the caller', async () => {
    const journal = new UploadJournal(path.join(dir, 'damaged'));
    const r = journal.recordFor('http://h', '/x', '/f');
    await r.remember('cd'.repeat(16));
    const [file] = await readdir(path.join(dir, 'damaged'));
    await writeFile(path.join(dir, 'damaged', file as string), '{"blobId":"../../etc"');
    expect(await r.recall()).toBeNull();
    await writeFile(path.join(dir, 'a-file'), '');
    const blocked = new UploadJournal(path.join(dir, 'a-file', 'uploads')).recordFor('http://h', '/x', '/f');
    await blocked.remember('ef'.repeat(16)); // cannot create the directory: ignored
    expect(await blocked.recall()).toBeNull();
    await blocked.forget('ef'.repeat(16));
  });

  it('lives under COFFER_STATE_DIR, else XDG_STATE_HOME, else ~/.local/state', () => {
    expect(defaultJournalDir({ COFFER_STATE_DIR: '/s' })).toBe('/s/uploads');
    expect(defaultJournalDir({ XDG_STATE_HOME: '/x' })).toBe('/x/coffer/uploads');
    expect(defaultJournalDir({})).toBe(path.join(os.homedir(), '.local', 'state', 'coffer', 'uploads'));
  });
});
