// Plan and apply for one host: compile the stored state, compare with the switch (`ovs-ofctl diff-flows`),
// install as one OpenFlow bundle, verify the switch now equals the plan. Idempotent: a second apply finds no
// difference and sends nothing; drift (a flow added or deleted by hand) shows up in the diff and is repaired.
import { CofferError, ErrorCode } from '../errors.js';
import type { NetRecordStore } from '../metadata/netstore/index.js';
import { compile, flowFile, type HostFlows } from './compiler.js';
import { withApplyLock } from './lock.js';
import { NetworkManager } from './manager.js';
import type { FlowDiff, Ovs } from './ovs.js';

export interface HostPlan {
  readonly host: string;
  readonly flows: number;
  readonly diff: FlowDiff;
}

export interface ApplyResult {
  readonly host: string;
  /** Flows in the installed table. */
  readonly flows: number;
  /** Flows added or changed, and removed (a changed flow counts in both). */
  readonly added: number;
  readonly removed: number;
  /** Ports removed from the bridge because no port record names them any more. */
  readonly portsRemoved: readonly string[];
}

/** Compiles the stored state for `host`. Throws NOT_FOUND (unknown host), NETWORK (inconsistent state). */
export async function compileHost(store: NetRecordStore, host: string): Promise<HostFlows> {
  const compiled = compile(await new NetworkManager(store).state()).get(host);
  if (!compiled) throw new CofferError(ErrorCode.NOT_FOUND, `unknown host ${host}`);
  return compiled;
}

/** What apply would change on the switch (read-only). */
export async function planHost(store: NetRecordStore, host: string, ovs: Ovs): Promise<HostPlan> {
  const compiled = await compileHost(store, host);
  // before the first apply there is no bridge yet: every flow is to be added
  const diff = (await ovs.bridgeExists()) ? await ovs.diff(flowFile(compiled)) : { add: [...compiled.flows], remove: [] };
  return { host, flows: compiled.flows.length, diff };
}

/**
 * Applies the stored state to `host`'s switch under the host's apply lock. Throws CONFLICT (another apply
 * holds the lock), NOT_FOUND, NETWORK (OVS refused, or the switch differs from the plan after the bundle).
 */
export async function applyHost(store: NetRecordStore, host: string, ovs: Ovs, leaseMs?: number): Promise<ApplyResult> {
  return withApplyLock(store, host, async () => {
    const compiled = await compileHost(store, host);
    const file = flowFile(compiled);
    const portsRemoved = await ovs.syncBridge(compiled.ports);
    const diff = await ovs.diff(file);
    if (diff.add.length || diff.remove.length) await ovs.replaceFlows(file);
    const after = await ovs.diff(file); // verify after write
    if (after.add.length || after.remove.length) {
      throw new CofferError(ErrorCode.NETWORK, `host ${host}: the switch still differs from the plan after apply (${after.add.length} missing, ${after.remove.length} extra)`);
    }
    return { host, flows: compiled.flows.length, added: diff.add.length, removed: diff.remove.length, portsRemoved };
  }, leaseMs);
}
