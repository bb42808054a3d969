/**
 * What the Runtime API costs a warm call: sequential calls of a `provided` function beside those of
 * a nodejs20 no-op on the same platform, interleaved call by call so the machine's noise falls on
 * all alike. Two custom runtimes: a Node.js Runtime API client (fetch, keep-alive) in an image built
 * on the nodejs20 image — the relay and the HTTP hops are the difference — and Lambda's tutorial
 * shell bootstrap (busybox `sh` + `wget`, two processes forked per call).
 */
import { deploy, invoke, noop, post } from './http.js';
import type { Platform } from './harness.js';
import { percentiles, type Percentiles } from './stats.js';
import { pushRuntimeImage } from '../test/support/images.js';
import { NODE_RUNTIME_API_CLIENT } from '../test/support/runtime-api-client.js';
import { zipFiles } from '../test/support/zip.js';

export interface ProvidedCost {
  nodejs20Ms: Percentiles;
  /** A Node.js Runtime API client (image entrypoint, runtime `provided`). */
  clientMs: Percentiles;
  /** A busybox shell bootstrap (zip, runtime `provided`). */
  shellMs: Percentiles;
}

const SHELL_BOOTSTRAP = `#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  EVENT=$(wget -q -S -O - "$API/invocation/next" 2>/tmp/headers)
  ID=$(sed -n 's/^ *Lambda-Runtime-Aws-Request-Id: *//p' /tmp/headers | tr -d '\\r')
  wget -q -O /dev/null --post-data '{}' "$API/invocation/$ID/response"
done
`;

export async function providedCost(platform: Platform, count: number, warmup = 100): Promise<ProvidedCost> {
  await deploy(platform, { name: 'native-noop', source: noop('native-noop') });
  await pushRuntimeImage(platform.config.registry, {
    repository: 'bench/node-client',
    tag: '1',
    runtime: 'nodejs20',
    files: [{ path: 'client.mjs', data: NODE_RUNTIME_API_CLIENT }],
    entrypoint: ['/usr/bin/node', '/var/task/client.mjs'],
  });
  const zip = (await zipFiles({ bootstrap: SHELL_BOOTSTRAP }, ['bootstrap'])).toString('base64');
  for (const body of [
    { name: 'client-noop', runtime: 'provided', handler: 'client.handler', image: 'bench/node-client:1' },
    { name: 'shell-noop', runtime: 'provided', handler: 'function.handler', code: { zip } },
  ]) {
    const reply = await post(`${platform.url}/v1/functions`, body, platform.auth);
    if (reply.status !== 201) throw new Error(`deploying ${body.name} answered ${reply.status}: ${reply.body}`);
  }
  const samples: Record<'native' | 'client' | 'shell', number[]> = { native: [], client: [], shell: [] };
  for (let i = 0; i < warmup + count; i++) {
    for (const [kind, name] of [
      ['native', 'native-noop'],
      ['client', 'client-noop'],
      ['shell', 'shell-noop'],
    ] as const) {
      const reply = await invoke(platform.url, name);
      if (reply.status !== 200) throw new Error(`${name} answered ${reply.status}: ${reply.body}`);
      if (i >= warmup) samples[kind].push(reply.ms);
    }
  }
  return { nodejs20Ms: percentiles(samples.native), clientMs: percentiles(samples.client), shellMs: percentiles(samples.shell) };
}
