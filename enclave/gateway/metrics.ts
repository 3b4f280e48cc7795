// Prometheus metrics of the enclave gateway (prom-client), served at /metrics like the storage service's
// (src/telemetry/metrics.ts). A factory, not a global: every gateway (and every test) gets its own registry.
// Only counts, sizes and latencies with route labels: never a path, a user, a token or a byte of content —
// /metrics answers without a token, and what it says is no more than the storage service sees anyway.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TransferBudget } from './transfer-budget.js';

export interface GatewayMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  /** Plaintext bytes received and sealed (PUT and multipart uploads that committed). */
  bytesSealed: Counter;
  /** Plaintext bytes opened and sent to clients (GET bodies, ranges included). */
  bytesOpened: Counter;
  /** Downloads cut off after the status line went out (a bad chunk, the storage service, or the client gone). */
  downloadsCutOff: Counter;
}

/**
 * A fresh registry with the gateway's metrics (and Node's process metrics — RSS, heap, external and ArrayBuffer
 * memory — unless processMetrics is false). `budgets`: the enclave's memory budgets (transfer-budget.ts), shown as
 * slots in use, their peak and requests waiting, labelled by budget name.
 */
export function createGatewayMetrics(options: { processMetrics?: boolean; prefix?: string; budgets?: Record<string, TransferBudget> } = {}): GatewayMetrics {
  const registry = new Registry();
  const p = options.prefix ?? 'coffer_gateway_';
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: p });
  const registers = [registry];
  const budgets = Object.entries(options.budgets ?? {});
  if (budgets.length > 0) {
    const gauge = (name: string, help: string, read: (b: TransferBudget) => number): Gauge<'budget'> => new Gauge({
      name: `${p}${name}`, help, labelNames: ['budget'], registers,
      collect() {
        for (const [budget, b] of budgets) this.set({ budget }, read(b));
      },
    });
    gauge('transfer_slots', 'Slots of the enclave memory budget (sealing streams; opened read buffers)', (b) => b.slots);
    gauge('transfer_slots_in_use', 'Slots held now', (b) => b.inUse);
    gauge('transfer_slots_peak', 'Most slots ever held at once', (b) => b.peak);
    gauge('transfer_waiting', 'Requests waiting for a slot (their bodies unread)', (b) => b.waiting);
  }
  return {
    registry,
    httpRequests: new Counter({ name: `${p}http_requests_total`, help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers }),
    httpDuration: new Histogram({
      name: `${p}http_request_duration_seconds`, help: 'HTTP request latency (downloads: until the body is handed to the socket)', labelNames: ['method', 'route'], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    }),
    bytesSealed: new Counter({ name: `${p}bytes_sealed_total`, help: 'Plaintext bytes received, sealed and committed', registers }),
    bytesOpened: new Counter({ name: `${p}bytes_opened_total`, help: 'Plaintext bytes opened and sent to clients', registers }),
    downloadsCutOff: new Counter({ name: `${p}downloads_cut_off_total`, help: 'Downloads ended early after their status line', registers }),
  };
}
