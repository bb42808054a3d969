/**
 * The gateway's GET /healthz at 32 connections (autocannon, its own process): the rate of the
 * most trivial request the gateway answers, the floor under any call through it. Warm calls/s
 * (warm.ts) is put beside it.
 */
import { autocannon } from '../load.js';
import { num, ratio } from '../report.js';
import type { Figure } from './figure.js';

const CONNECTIONS = 32;
const SECONDS = 5;

export const gatewayFloor: Figure = {
  key: 'healthz',
  title: `gateway GET /healthz, ${CONNECTIONS} connections, ${SECONDS} s (autocannon)`,
  async measure(ctx) {
    const url = `${ctx.platform.url}/healthz`;
    await autocannon({ url, connections: CONNECTIONS, seconds: 1 }); // sockets open, code paths compiled
    const rate = await autocannon({ url, connections: CONNECTIONS, seconds: SECONDS });
    ctx.baselines.healthzPerSec = rate.perSec;
    return {
      data: { ...rate },
      rows: [
        {
          figure: `gateway /healthz/s, ${CONNECTIONS} connections (the floor)`,
          skiff: `${num(rate.perSec, 0)} (${rate.non2xx + rate.errors} failed)`,
          baseline: `direct socket ${num(ctx.baselines.directSocketPerSec, 0)} calls/s`,
          ratio: ratio(rate.perSec, ctx.baselines.directSocketPerSec),
          aim: '–',
          met: null,
        },
      ],
    };
  },
};
