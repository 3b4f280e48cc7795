// Public entry of the virtual network manager (docs/network.md): the model, the manager that stores it, the
// flow compiler, and plan/apply against a host's Open vSwitch.
export * from './model.js';
export { NetworkManager, forwardId, type AttachRequest } from './manager.js';
export { compile, flowFile, ruleMark, T as Tables, CT_ZONE, type HostFlows, type BridgePort } from './compiler.js';
export { Ovs, type OvsTarget, type FlowDiff } from './ovs.js';
export { applyHost, planHost, compileHost, type ApplyResult, type HostPlan } from './apply.js';
export { withApplyLock } from './lock.js';
