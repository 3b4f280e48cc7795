// Progress display for long transfers: a single self-rewriting line on stderr when it is a TTY, nothing
// otherwise (scripts get --json on stdout and a clean stderr).
export interface Progress {
  add(bytes: number): void;
  done(): void;
}

const silent: Progress = { add() {}, done() {} };

export function progressBar(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY || process.env.COFFER_NO_PROGRESS) return silent;
  const started = Date.now();
  let done = 0;
  let lastDraw = 0;
  const draw = (final: boolean): void => {
    const now = Date.now();
    if (!final && now - lastDraw < 100) return;
    lastDraw = now;
    const secs = Math.max((now - started) / 1000, 0.001);
    const frac = total > 0 ? Math.min(done / total, 1) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const line = `${label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(done / secs)}/s`;
    stream.write(`\r${line.slice(0, (stream.columns ?? 100) - 1)}\x1b[K${final ? '\n' : ''}`);
  };
  return {
    add(bytes) {
      done += bytes;
      draw(false);
    },
    done() {
      draw(true);
    },
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
