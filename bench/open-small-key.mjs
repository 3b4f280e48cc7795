// CPU of opening many small files' chunks (get -r's per-file decrypt, small-file.ts openFileAnswer), with each
// file's data key handed to openChunkInto as its raw bytes (before #13) or as a secret KeyObject made once for
// the file (after). Old and new alternate in one run, in rotating order, so both see the same machine load.
// Runs the compiled code, as the CLI does (npm run build first; under tsx every thrown error also pays for source
// maps): node bench/open-small-key.mjs [files, default 10000] [bytes a file, default 4096] [rounds, default 6]
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
const { dataKeyObject, newBlobId, openChunkInto, sealChunkInto, sealedSize } = await import(new URL('../dist/src/crypto/index.js', import.meta.url).href);

const files = Number(process.argv[2] ?? 10_000);
const size = Number(process.argv[3] ?? 4096);
const rounds = Number(process.argv[4] ?? 6);

const sealed = Array.from({ length: files }, () => {
  const dek = new Uint8Array(randomBytes(32));
  const blobId = newBlobId();
  const s = sealChunkInto(dek, { blobId, index: 0, keyGeneration: 1, final: true }, randomBytes(size), Buffer.allocUnsafe(sealedSize(size)));
  return { dek, blobId, sealed: Buffer.from(s) };
});

const variants = {
  raw: (dek) => dek,
  keyObject: (dek) => dataKeyObject(dek),
};

/** CPU milliseconds (user + system) to open every file's chunk once with `name`'s key form. */
function run(name) {
  const key = variants[name];
  const u0 = process.cpuUsage();
  for (const f of sealed) {
    const out = Buffer.allocUnsafeSlow(size);
    openChunkInto(key(f.dek), f.sealed, { blobId: f.blobId, index: 0, keyGeneration: 1, final: true, plaintextLength: size }, out);
  }
  const u = process.cpuUsage(u0);
  return (u.user + u.system) / 1e3;
}

const names = Object.keys(variants);
for (const n of names) run(n); // warm-up, not counted
const times = { raw: [], keyObject: [] };
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? names : [...names].reverse();
  for (const n of order) times[n].push(run(n));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${files} files of ${size} bytes, ${rounds} rounds interleaved, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const n of names) {
  console.log(`  ${n.padEnd(9)}: median ${median(times[n]).toFixed(0)} ms CPU (${(median(times[n]) * 1000 / files).toFixed(1)} µs a file); rounds ${times[n].map((t) => t.toFixed(0)).join(' ')}`);
}
