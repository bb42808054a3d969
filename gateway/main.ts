/** Entry point of a gateway: `node dist/gateway/main.js`. Never runs user code. */
import { loadConfig } from '../infra/config.js';
import { createLogger } from '../infra/log.js';
import { startTelemetry } from '../infra/telemetry.js';
import { startGateway } from './server.js';

const config = loadConfig();
const log = createLogger('gateway', config.logLevel);
const telemetry = startTelemetry('skiff-gateway', config.telemetry);
const gateway = await startGateway(config, { log, tracer: telemetry.tracer });
await gateway.app.listen({ host: config.gateway.host, port: config.gateway.port });
log.info({ url: `http://${config.gateway.host}:${config.gateway.port}` }, 'gateway listening');

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
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
