/** The gateway's Prometheus metrics, served at GET /metrics (prom-client: the standard Node.js client). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface GatewayMetrics {
  registry: Registry;
  invocations: Counter<'function' | 'outcome' | 'start'>;
  latency: Histogram<'function'>;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'skiff_gateway_' });
  return {
    registry,
    invocations: new Counter({
      name: 'skiff_invocations_total',
      help: 'Invocations answered by the gateway, by function, outcome (error code or ok) and start (warm or cold).',
      labelNames: ['function', 'outcome', 'start'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'skiff_invocation_duration_seconds',
      help: 'Time from the gateway receiving a synchronous call to its answer.',
      labelNames: ['function'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
