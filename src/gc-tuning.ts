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

export const GC_FLAGS: readonly string[] = ['--external-memory-accounted-in-global-limit'];

for (const flag of GC_FLAGS) setFlagsFromString(flag);
