/**
 * `npm run bench`: Skiff measured in the shape users run it (deployed/run.ts): the platform
 * brought up as `npm start` does, driven by load generators in processes of their own, each
 * figure beside a baseline of the same run. The figures are the modules listed below, measured
 * in that order on one platform; a new figure is a module exporting a `Figure`
 * (deployed/figure.ts) added to the list.
 *
 *   npm run bench                          the deployed figures (a few minutes)
 *   npm run bench -- --density N           only: hold N idle warm instances on the deployed platform
 *   npm run bench -- --in-process [...]    the one-process bench (in-process.ts), with its own
 *   npm run bench -- --noisy | --tenancy   flags; these two imply it
 *   npm run bench -- --replies             only: a sync reply over the reply stream beside pub/sub (replies.ts)
 *   npm run bench -- --warm-path           only: warm calls with the short warm path beside without (warm-path.ts)
 */
import { burst } from './deployed/burst.js';
import { coldEvicted, coldPooled } from './deployed/cold.js';
import type { Figure } from './deployed/figure.js';
import { gatewayFloor } from './deployed/gateway-floor.js';
import { runDeployed } from './deployed/run.js';
import { warmLatency, warmRate } from './deployed/warm.js';
import { replyTransportBench } from './replies.js';
import { warmPathBench } from './warm-path.js';

/** In order: /healthz first (warm calls/s is put beside it); the burst last (it leaves 100 instances). */
const FIGURES: readonly Figure[] = [gatewayFloor, warmLatency, warmRate, coldPooled, coldEvicted, burst];

const args = process.argv.slice(2);
if (args.includes('--in-process') || args.includes('--noisy') || args.includes('--tenancy')) {
  await import('./in-process.js');
} else if (args.length === 1 && args[0] === '--replies') {
  await replyTransportBench();
} else if (args.length === 1 && args[0] === '--warm-path') {
  await warmPathBench();
} else {
  const at = args.indexOf('--density');
  const density = at === -1 ? undefined : Number(args[at + 1]);
  const known = at === -1 ? args.length === 0 : args.length === 2;
  if (!known || (density !== undefined && !(Number.isInteger(density) && density > 0))) {
    console.error('usage: npm run bench [-- --density N | --replies | --warm-path | --in-process [--density N | --noisy | --tenancy]]');
    process.exit(2);
  }
  await runDeployed({ figures: FIGURES, ...(density === undefined ? {} : { density }) });
}
