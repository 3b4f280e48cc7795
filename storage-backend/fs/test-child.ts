// Test helper run as a separate process (node --import tsx) by fs-chunk-store.test.ts, for what needs a real
// process boundary: writing under a lowered RLIMIT_FSIZE (prlimit), being killed mid-write (a crash), and
// being traced by strace. Not part of the store. Usage:
//   test-child.ts put <root> <blobId> <index> <bytes> [direct|buffered]
//                                                       put <bytes> random bytes; prints {"ok":…} or {"error":…}
//   test-child.ts stall <root> <blobId> <index>         put 2 MiB then wait forever (until killed)
//   test-child.ts pack <root> <count> <bytes>           putPack <count> random chunks of <bytes>; prints {"ok":{packId,refs}}
//   test-child.ts stallpack <root> <count> <bytes>      the same, but waits forever in beforeRename (until killed)
//   test-child.ts killmarks <root> <count> <bytes> <stopAt>
//                                                       putPack <count> random chunks (prints {"packed":{refs,sha256}}),
//                                                       then deleteBlob each in order, printing {"deleted":i} after
//                                                       each; before deleting chunk <stopAt> prints {"stalled":i} and
//                                                       waits forever (until killed)
//   test-child.ts putone <root> <blobId> <index> <bytes> aligned|unaligned
//                                                       put <bytes> random bytes as ONE piece (a bulk copier's
//                                                       buffer) from aligned memory or 1 byte past it, with
//                                                       directIo; prints {"ok":…,"data":<sha256 of the bytes>}
//   test-child.ts read <root> <blobId> <index> - [direct|buffered]
//                                                       readInto an aligned buffer; prints {"ok":{"size":…}}
import { createHash, randomBytes } from 'node:crypto';
import { DIRECT_IO_ALIGNMENT, alignUp, alignedAllocator } from '../../src/buffer-pool.js';
import { MAX_SEALED_SIZE } from '../../src/crypto/index.js';
import { isCofferError } from '../../src/errors.js';
import { openFsChunkStore } from './index.js';

async function* source(bytes: number, stall: boolean): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes; at += 64 * 1024) yield randomBytes(Math.min(64 * 1024, bytes - at));
  if (stall) {
    process.stdout.write('stalled\n');
    await new Promise(() => undefined);
  }
}

const [mode, root, blobId, indexText, bytesText, io] = process.argv.slice(2);
const directIo = mode === 'putone' ? true : io === undefined || io === '-' ? undefined : io === 'direct';
const store = await openFsChunkStore({ root: root ?? '', ...(directIo === undefined ? {} : { directIo }) });
const ref = { blobId: blobId ?? '', index: Number(indexText) };
try {
  if (mode === 'pack' || mode === 'stallpack') {
    const refs = Array.from({ length: Number(blobId) }, () => ({ blobId: randomBytes(16).toString('hex'), index: 0 }));
    const chunks = refs.map((r) => ({ ref: r, data: randomBytes(Number(indexText)) }));
    const stall = async (): Promise<void> => {
      process.stdout.write(`${JSON.stringify({ stalled: refs })}\n`);
      await new Promise(() => undefined);
    };
    const result = await store.putPack(chunks, mode === 'stallpack' ? { beforeRename: stall } : {});
    process.stdout.write(`${JSON.stringify({ ok: { packId: result.packId, refs } })}\n`);
    await store.close();
    process.exit(0);
  }
  if (mode === 'killmarks') {
    const refs = Array.from({ length: Number(blobId) }, () => ({ blobId: randomBytes(16).toString('hex'), index: 0 }));
    const chunks = refs.map((r) => ({ ref: r, data: randomBytes(Number(indexText)) }));
    await store.putPack(chunks);
    const digests = chunks.map((c) => createHash('sha256').update(c.data).digest('hex'));
    process.stdout.write(`${JSON.stringify({ packed: { refs, sha256: digests } })}\n`);
    for (const [i, r] of refs.entries()) {
      if (i === Number(bytesText)) {
        process.stdout.write(`${JSON.stringify({ stalled: i })}\n`);
        await new Promise(() => undefined);
      }
      await store.deleteBlob(r.blobId);
      process.stdout.write(`${JSON.stringify({ deleted: i })}\n`);
    }
    await store.close();
    process.exit(0);
  }
  if (mode === 'putone') {
    const bytes = Number(bytesText);
    const memory = alignedAllocator(alignUp(bytes) + DIRECT_IO_ALIGNMENT, 1)();
    const data = io === 'unaligned' ? memory.subarray(1, 1 + bytes) : memory.subarray(0, bytes);
    data.set(randomBytes(bytes));
    const after = Buffer.from(memory.subarray(data.byteOffset - memory.byteOffset + bytes));
    const one = async function* (): AsyncGenerator<Uint8Array> {
      yield data;
    };
    const result = await store.put(ref, one(), { expectedSize: bytes });
    // the caller's memory after the chunk is not the store's to pad
    const untouched = Buffer.from(memory.subarray(data.byteOffset - memory.byteOffset + bytes)).equals(after);
    process.stdout.write(`${JSON.stringify({ ok: result, data: createHash('sha256').update(data).digest('hex'), untouched })}\n`);
    await store.close();
    process.exit(0);
  }
  if (mode === 'read') {
    const bytes = await store.readInto(ref, alignedAllocator(alignUp(MAX_SEALED_SIZE), 1)());
    process.stdout.write(`${JSON.stringify({ ok: { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } })}\n`);
    await store.close();
    process.exit(0);
  }
  const stall = mode === 'stall';
  const result = await store.put(ref, source(stall ? 2 * 1024 * 1024 : Number(bytesText), stall));
  process.stdout.write(`${JSON.stringify({ ok: result })}\n`);
} catch (e) {
  const error = isCofferError(e) ? { code: e.code, message: e.message } : { code: 'UNEXPECTED', message: String(e) };
  process.stdout.write(`${JSON.stringify({ error })}\n`);
}
await store.close();
