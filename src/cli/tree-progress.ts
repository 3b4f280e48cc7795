// One progress line for a whole tree copy (put -r / get -r): files and bytes done out of those found so far,
// the rate, and an ETA once the walk has found everything. Drawn on stderr when it is a TTY, at most 10 times a
// second; nothing otherwise (scripts read the summary or --json on stdout).
import type { TreeFileEvent } from '../client/tree-transfer.js';
import { formatBytes } from './progress.js';

export interface TreeProgress {
  add(bytes: number): void;
  file(event: TreeFileEvent): void;
  found(files: number, bytes: number, complete: boolean): void;
  /** Prints a line above the progress line. */
  print(line: string): void;
  done(): void;
  readonly filesDone: number;
}

export function treeProgress(label: string, stream: NodeJS.WriteStream = process.stderr): TreeProgress {
  const live = stream.isTTY === true && !process.env.COFFER_NO_PROGRESS;
  const started = Date.now();
  let bytes = 0;
  let files = 0;
  let foundFiles = 0;
  let foundBytes = 0;
  let complete = false;
  let lastDraw = 0;
  let drawn = false;
  const draw = (force: boolean): void => {
    if (!live) return;
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const secs = Math.max((now - started) / 1000, 0.001);
    const rate = bytes / secs;
    const eta = complete && rate > 0 ? ` ETA ${Math.ceil((foundBytes - bytes) / rate)} s` : '';
    const of = complete ? '' : '+';
    const line = `${label}: ${files}/${foundFiles}${of} files, ${formatBytes(bytes)}/${formatBytes(foundBytes)}${of}, ${(files / secs).toFixed(0)} files/s, ${formatBytes(rate)}/s${eta}`;
    stream.write(`\r${line.slice(0, (stream.columns ?? 100) - 1)}\x1b[K`);
    drawn = true;
  };
  return {
    add(n) {
      bytes += n;
      draw(false);
    },
    file(e) {
      if (e.action !== 'failed') files++;
      draw(false);
    },
    found(f, b, c) {
      foundFiles = f;
      foundBytes = b;
      complete = c;
      draw(false);
    },
    print(line) {
      if (drawn) stream.write('\r\x1b[K');
      stream.write(`${line}\n`);
      drawn = false;
      draw(true);
    },
    done() {
      if (!live) return;
      draw(true);
      stream.write('\n');
      drawn = false;
    },
    get filesDone() {
      return files;
    },
  };
}
