#!/usr/bin/env node
// CPU of the S3 staged-part path in one process, for A/B of two trees in the same time window: the storage
// service, the gateway's S3 listener over FileOps with record MACs (the enclave's code, key-file data keys: no KMS)
// and the S3 client all run here, so `process.cpuUsage()` counts every side and none of a shared machine's other
// processes. It uploads SIZE MiB as 5 MiB parts with Content-MD5, 4 at once (rclone 1.60's pattern: every part
// staged, joined in the background), completes, checks the object's SHA-256, and prints one JSON line.
// Needs the tree built with its tests (`npx tsc -p .`: dist/enclave/s3/test-env.js), not `npm run build`.
//
//   node bench/s3-parts-cpu.mjs TREE [SIZE_MiB=512]      (run it alternately for the two trees)
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const tree = path.resolve(process.argv[2] ?? '.');
const MiB = 1 << 20;
const total = Number(process.argv[3] ?? 512) * MiB;
const { startS3TestEnv } = await import(path.join(tree, 'dist/enclave/s3/test-env.js'));
const { S3TestClient } = await import(path.join(tree, 'dist/enclave/s3/test-client.js'));
const env = await startS3TestEnv({ backend: 'gateway', macs: true });
try {
  const s3 = new S3TestClient(env.url, env.caPem, await env.accessKey('alice'));
  const bucket = await s3.send('PUT', '/partscpu');
  if (bucket.status !== 200) throw new Error(`bucket: ${bucket.status} ${bucket.text}`);
  const bodies = Array.from({ length: 8 }, () => randomBytes(5 * MiB));
  const n = Math.ceil(total / (5 * MiB));
  const body = (k) => (k === n ? bodies[k % 8].subarray(0, total - (n - 1) * 5 * MiB) : bodies[k % 8]);
  const created = await s3.send('POST', '/partscpu/f.bin', { query: { uploads: '' } });
  const id = /<UploadId>([^<]+)</.exec(created.text)?.[1];
  if (!id) throw new Error(`create: ${created.status} ${created.text}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const etags = new Map();
  const queue = Array.from({ length: n }, (_, i) => i + 1);
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
      const b = body(k);
      const r = await s3.send('PUT', '/partscpu/f.bin', { query: { uploadId: id, partNumber: String(k) }, body: b, headers: { 'content-md5': createHash('md5').update(b).digest('base64') } });
      if (r.status !== 200) throw new Error(`part ${k}: ${r.status} ${r.text}`);
      etags.set(k, r.headers.etag);
    }
  }));
  const xml = `<CompleteMultipartUpload>${Array.from({ length: n }, (_, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etags.get(i + 1)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
  const done = await s3.send('POST', '/partscpu/f.bin', { query: { uploadId: id }, body: xml });
  if (done.status !== 200 || !done.text.includes('CompleteMultipartUploadResult')) throw new Error(`complete: ${done.status} ${done.text}`);
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - t0) / 1000;
  const got = await s3.send('GET', '/partscpu/f.bin');
  const want = createHash('sha256');
  for (let k = 1; k <= n; k++) want.update(body(k));
  if (createHash('sha256').update(got.body).digest('hex') !== want.digest('hex')) throw new Error('the object differs from the parts');
  console.log(JSON.stringify({ tree, mib: total / MiB, parts: n, cpuS: +((cpu.user + cpu.system) / 1e6).toFixed(2), userS: +(cpu.user / 1e6).toFixed(2), sysS: +(cpu.system / 1e6).toFixed(2), wallS: +wallS.toFixed(2) }));
} finally {
  await env.close();
}
process.exit(0);
