/**
 * AWS's own Runtime Interface Client for Node.js (`aws-lambda-ric` on npm) as an image's entrypoint,
 * deployed with runtime `provided`: the image is built on Skiff's nodejs20 image, with the handler
 * and the client under /var/task, and `node …/aws-lambda-ric/bin/index.mjs index.handler` as its
 * entrypoint, as one builds it for Lambda.
 *
 * aws-lambda-ric compiles a native addon (libcurl and aws-lambda-cpp, with cmake, autoconf,
 * automake and libtool) when it is installed, about 9 minutes on a 2-core machine, so it is not a
 * dependency of the project: this file runs when SKIFF_TEST_AWS_LAMBDA_RIC names the directory of an
 * installed copy (`npm install aws-lambda-ric` somewhere else, then `…/node_modules/aws-lambda-ric`),
 * and is skipped otherwise. On Node.js 20 npm picks aws-lambda-ric 3.3.0 (4.x needs Node.js 22).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { listFiles } from '../../infra/images/rootfs-builder.js';
import { client } from '../support/api.js';
import { pushRuntimeImage } from '../support/images.js';
import type { LayerFile } from '../../infra/images/oci/layer.js';
import { startPlatform, type Platform } from '../support/platform.js';

const ric = process.env.SKIFF_TEST_AWS_LAMBDA_RIC;

if (!ric || !existsSync(join(ric, 'dist', 'rapid-client.node'))) {
  t.test(
    'an aws-lambda-ric image',
    { skip: 'SKIFF_TEST_AWS_LAMBDA_RIC does not name an installed aws-lambda-ric (with its native addon built)' },
    () => undefined,
  );
} else {
  let platform: Platform;
  t.before(async () => {
    platform = await startPlatform();
  });
  t.teardown(async () => {
    await platform?.stop();
  });
  const api = client(() => platform);

  t.test('an aws-lambda-ric image deployed with runtime provided runs a Lambda handler unchanged', async (t) => {
    const files: LayerFile[] = [
      { path: 'index.mjs', data: 'export const handler = async (event, context) => ({ got: event, id: context.awsRequestId, fn: context.functionName });\n' },
      { path: 'fails.mjs', data: 'export const handler = async () => { throw new RangeError("out of range"); };\n' },
      { path: 'package.json', data: '{"type":"module"}\n' },
    ];
    // The client's own files: its package.json, bin/ and dist/ (the native addon is there); nothing else is loaded.
    const keep = (path: string, isDirectory: boolean): boolean => {
      const inside = relative(ric, path);
      return inside === 'package.json' || /^(bin|dist)(\/|$)/.test(inside) || (isDirectory && (inside === 'bin' || inside === 'dist'));
    };
    for (const file of await listFiles(ric, keep)) {
      files.push({ path: join('node_modules/aws-lambda-ric', relative(ric, file)), data: await readFile(file) });
    }
    const entrypoint = ['/usr/bin/node', '/var/task/node_modules/aws-lambda-ric/bin/index.mjs'];
    await pushRuntimeImage(platform.config.registry, {
      repository: 'team/ric',
      tag: '1',
      runtime: 'nodejs20',
      files,
      entrypoint: [...entrypoint, 'index.handler'],
    });
    await pushRuntimeImage(platform.config.registry, {
      repository: 'team/ric',
      tag: '2',
      runtime: 'nodejs20',
      files,
      entrypoint: [...entrypoint, 'fails.handler'],
    });

    const deployed = await api.deploy({ name: 'ric', runtime: 'provided', handler: 'index.handler', image: 'team/ric:1' });
    t.equal(deployed.status, 201, 'an image built on nodejs20 with aws-lambda-ric as entrypoint deploys as provided');
    const res = await api.invoke('ric', { hello: 'ric' });
    t.equal(res.status, 200);
    if (res.status !== 200) {
      const logs = await fetch(`${platform.url}/v1/functions/ric/logs`, { headers: platform.auth });
      t.comment(`the container's output: ${await logs.text()}`);
    }
    t.same(await res.json(), { got: { hello: 'ric' }, id: res.headers.get('x-skiff-invocation-id'), fn: 'ric' });

    t.equal((await api.deploy({ name: 'ric-fails', runtime: 'provided', handler: 'fails.handler', image: 'team/ric:2' })).status, 201);
    const failed = await api.invoke('ric-fails', {});
    t.equal(failed.status, 502);
    t.match(await failed.json(), { error: { code: 'FunctionError', message: 'out of range', errorType: 'RangeError' } });
  });
}
