/** Entry point of a scheduler: `node dist/scheduler/main.js` (assembled in service.ts). */
import { loadConfig } from '../infra/config.js';
import { createLogger } from '../infra/log.js';
import { checkRedisSettings } from '../infra/queue/redis-check.js';
import { startTelemetry } from '../infra/telemetry.js';
import { startScheduler } from './service.js';

const config = loadConfig();
const log = createLogger('scheduler', config.logLevel);
// Warns (once, in the background) if that Redis would lose accepted calls: no AOF, or eviction.
void checkRedisSettings(config.redisUrl, log, { sentinel: config.redisClient.sentinel });
const telemetry = startTelemetry('skiff-scheduler', config.telemetry);
const scheduler = await startScheduler(config, { log, tracer: telemetry.tracer });
log.info('scheduler ready');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // `on` with a flag, not `once`: Ctrl-C reaches every process of the group, and then the
  // bring-up's SIGTERM follows; a second signal must not kill a process that is stopping.
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    scheduler
      .stop()
      .then(() => telemetry.shutdown())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'scheduler did not stop cleanly');
        process.exit(1);
      });
  });
}
