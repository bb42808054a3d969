/**
 * Entry point of a worker node: `node dist/worker/main.js`. Stops cleanly on SIGINT/SIGTERM,
 * leaving no container, mount or cgroup behind.
 */
import { loadConfig } from '../infra/config.js';
import { createLogger } from '../infra/log.js';
import { checkRedisSettings } from '../infra/queue/redis-check.js';
import { startTelemetry } from '../infra/telemetry.js';
import { startWorker } from './node.js';

const config = loadConfig();
const log = createLogger('worker', config.logLevel);
// Warns (once, in the background) if that Redis would lose accepted calls: no AOF, or eviction.
void checkRedisSettings(config.redisUrl, log, { sentinel: config.redisClient.sentinel });
const telemetry = startTelemetry(`skiff-worker`, config.telemetry);
const node = await startWorker(config, { log, tracer: telemetry.tracer });
log.info({ worker: config.worker.id, pool: config.worker.pool }, 'worker ready');

let stopping = false;
function stop(why: string): void {
  if (stopping) return;
  stopping = true;
  log.info({ why }, 'worker stopping');
  node
    .stop()
    .then(() => telemetry.shutdown())
    .then(() => process.exit(0))
    .catch((error: unknown) => {
      log.error({ err: error }, 'worker did not stop cleanly');
      process.exit(1);
    });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
// An operator's drain ends with the node leaving the fleet.
void node.drained.then(() => stop('drained'));
