// Public entry of src/telemetry: the metrics registry factory and the logger.
export { createServiceMetrics } from './metrics.js';
export type { MetricsOptions, ServiceMetrics } from './metrics.js';
export { createLogger } from './logger.js';
export type { Logger } from './logger.js';
