// V8 tuning every Coffer process applies first thing (imported for its effect by the process entries:
// src/cli/run.ts, enclave/runtime/proxy-main.ts).
//
// Node 24's V8 starts a full mark-compact each time the off-heap memory held by ArrayBuffers grows by its soft
// limit, where Node 20's V8 let the young-generation collector free them. Coffer's data path lives in such
// buffers (socket reads, cipher output, file reads), so with the same code `coffer put` spent 35–40 % more CPU
// per GiB on Node 24 and the storage service 50–60 % more (docs/runtime.md, "Garbage collection and off-heap
// buffers"). Counting that memory in the heap's global limit — the behaviour later V8 releases turn on by
// default — gives Node 20's behaviour back. NODE_OPTIONS refuses V8 flags of this kind, so it is set here at
// run time, before the data path allocates anything; V8 reads it at each limit computation.
import { setFlagsFromString } from 'node:v8';
import { collectYoungGarbage } from './young-garbage.js';
import { capYoungGeneration } from './young-generation-cap.js';

export const GC_FLAGS: readonly string[] = ['--external-memory-accounted-in-global-limit'];

for (const flag of GC_FLAGS) setFlagsFromString(flag);

// glibc's malloc gives memory back to the kernel (trims the heap top) whenever more than its trim threshold is
// free there, and Coffer's bulk paths free tens of MiB at once at each young-generation collection (the cipher's
// slice outputs, socket reads): every later byte was then faulted in again (80k–130k page faults per 512 MiB in
// `coffer get` and `coffer put` on Node 24, against 25k with trimming held back; docs/runtime.md, "glibc's trim
// threshold"). The threshold is raised the one way a program can without mallopt: glibc sets it to twice the size
// of the largest mmap'd block freed so far (up to 32 MiB; mallopt(3), "M_MMAP_THRESHOLD"), so one 31 MiB buffer is
// allocated and dropped here, and a minor collection frees it. Where the allocator is not glibc this costs one
// untouched 31 MiB mapping for a moment and changes nothing.
export const TRIM_PRIMER_BYTES = 31 * 1024 * 1024;

void new ArrayBuffer(TRIM_PRIMER_BYTES);
collectYoungGarbage();

// The young generation grows to 128 MiB under the many-small-files loads (put -r, get -r, the service serving
// them) unless capped; src/young-generation-cap.ts says why the cap is set this way and not by a flag at start.
capYoungGeneration();
