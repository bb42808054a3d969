/** The gateway's Prometheus metrics, served at GET /metrics (prom-client: the standard Node.js client). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Job counts of a queue by state (BullMQ's getJobCounts). */
export type QueueCounts = () => Promise<Record<string, number>>;

export interface GatewayMetrics {
  registry: Registry;
  invocations: Counter<'function' | 'outcome' | 'start'>;
  latency: Histogram<'function' | 'outcome'>;
  /** Calls refused because their tenant was over its calls per second. */
  throttled: Counter<'tenant'>;
  /** Synchronous calls by how they reached a node: straight to a free warm instance, or placed by a scheduler. */
  routes: Counter<'route'>;
  /**
   * Reports a platform-wide count kept in a Redis hash by whichever process counted it (a
   * scheduler has no /metrics of its own), read at every scrape: one gauge, a label per field.
   */
  watchCounts(name: string, help: string, read: () => Promise<Record<string, string>>): void;
  /** Reports the depth of queue `name` (read from `counts` at every scrape). */
  watchQueue(name: string, counts: QueueCounts): void;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'skiff_gateway_' });
  const queues = new Map<string, QueueCounts>();
  new Gauge({
    name: 'skiff_queue_depth',
    help: 'Jobs on a queue by state (waiting, prioritized, delayed, active), read when scraped.',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        [...queues].map(async ([queue, counts]) => {
          // A queue that cannot be read (Redis down) is left out of this scrape, not the others.
          const byState = await counts().catch(() => undefined);
          for (const [state, jobs] of Object.entries(byState ?? {})) this.set({ queue, state }, jobs);
        }),
      );
    },
  });
  return {
    registry,
    invocations: new Counter({
      name: 'skiff_invocations_total',
      help: 'Invocations answered by the gateway, by function, outcome (error code or ok) and start (warm, cold, or none when no instance ran it).',
      labelNames: ['function', 'outcome', 'start'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'skiff_invocation_duration_seconds',
      help: 'Time from the gateway receiving a synchronous call to its answer, by function and outcome (error code or ok).',
      labelNames: ['function', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    routes: new Counter({
      name: 'skiff_call_routes_total',
      help: 'Synchronous calls by route: warm (sent straight to a node with a free warm instance) or scheduler (placed by a scheduler).',
      labelNames: ['route'],
      registers: [registry],
    }),
    throttled: new Counter({
      name: 'skiff_calls_throttled_total',
      help: 'Calls answered 429 because their tenant was over its callsPerSecond quota, by tenant.',
      labelNames: ['tenant'],
      registers: [registry],
    }),
    watchCounts(name, help, read) {
      new Gauge({
        name,
        help,
        labelNames: ['kind'],
        registers: [registry],
        async collect() {
          this.reset();
          // Redis unreachable: this scrape leaves the figure out rather than failing the others.
          const counts = await read().catch(() => ({}) as Record<string, string>);
          for (const [kind, n] of Object.entries(counts)) this.set({ kind }, Number(n));
        },
      });
    },
    watchQueue(name, counts) {
      queues.set(name, counts);
    },
  };
}
