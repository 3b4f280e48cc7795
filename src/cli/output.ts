// One place that writes command results: JSON for scripts (--json), a human line otherwise.
export function print(opts: { json?: boolean }, value: unknown, human: () => string): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(value)}\n`);
  else {
    const text = human();
    if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
