/** Entry point of a gateway: `node dist/gateway/main.js`. Never runs user code. */
import { loadConfig } from '../infra/config.js';
import { createLogger } from '../infra/log.js';
import { checkRedisSettings } from '../infra/queue/redis-check.js';
import { startTelemetry } from '../infra/telemetry.js';
import { startGateway } from './server.js';

const config = loadConfig();
const log = createLogger('gateway', config.logLevel);
// Warns (once, in the background) if that Redis would lose accepted calls: no AOF, or eviction.
void checkRedisSettings(config.redisUrl, log, { sentinel: config.redisClient.sentinel });
const telemetry = startTelemetry('skiff-gateway', config.telemetry);
const gateway = await startGateway(config, { log, tracer: telemetry.tracer });
const { url, functionsUrl } = await gateway.listen();
// Two origins: function code never runs where an operator's key is used (docs/SECURITY.md).
log.info({ url, functionsUrl }, 'gateway listening');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // `on` with a flag, not `once`: Ctrl-C reaches every process of the group, and then the
  // bring-up's SIGTERM follows; a second signal must not kill a process that is stopping.
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    gateway
      .stop()
      .then(() => telemetry.shutdown())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'gateway did not stop cleanly');
        process.exit(1);
      });
  });
}
