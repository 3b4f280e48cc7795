// Prometheus metrics of the storage service (prom-client). A factory, not a global: every service instance
// (and every test) gets its own registry, so two servers in one process never clash.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServiceMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  bytesIn: Counter;
  bytesOut: Counter;
  chunkWrites: Counter<'result'>;
  /** Time to stream one chunk into the chunk store durably (includes the store's fsync + rename). */
  chunkPutDuration: Histogram;
  fsyncDuration: Histogram<'target'>;
}

export interface MetricsOptions {
  /** Also collect Node process metrics (default true). */
  processMetrics?: boolean;
  prefix?: string;
}

/** A fresh registry with the service's metrics. */
export function createServiceMetrics(options: MetricsOptions = {}): ServiceMetrics {
  const registry = new Registry();
  const p = options.prefix ?? 'coffer_';
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: p });
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({ name: `${p}http_requests_total`, help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers }),
    httpDuration: new Histogram({
      name: `${p}http_request_duration_seconds`, help: 'HTTP request latency', labelNames: ['method', 'route'], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    bytesIn: new Counter({ name: `${p}http_bytes_in_total`, help: 'Request body bytes received (chunk uploads)', registers }),
    bytesOut: new Counter({ name: `${p}http_bytes_out_total`, help: 'Response body bytes sent (chunk downloads)', registers }),
    chunkWrites: new Counter({ name: `${p}chunk_writes_total`, help: 'Chunk writes by result', labelNames: ['result'], registers }),
    chunkPutDuration: new Histogram({
      name: `${p}chunk_put_duration_seconds`, help: 'Time to store one sealed chunk durably', registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    fsyncDuration: new Histogram({
      name: `${p}fsync_duration_seconds`, help: 'fsync latency of chunk files and their directories', labelNames: ['target'], registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    }),
  };
}
