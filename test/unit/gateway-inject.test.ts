/**
 * Gateway routes through fastify's `inject()` (no listener, no services): the app is built by
 * gateway/app.ts as in production, over a context whose key store and function store are fakes.
 * What is tested is the gateway's own: the access check (401 without or with a bad key, 403 for a
 * role or a key limited to other functions, 404 for another tenant's function, the same answer as
 * for a missing one), request validation answered as InvalidRequest with the field at fault, the
 * error body's shape, env values shown by role, and an unknown route.
 */
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../infra/config.js';
import type { Database } from '../../infra/db/database.js';
import type { FunctionInfo } from '../../infra/db/function-store.js';
import { createLogger } from '../../infra/log.js';
import { keySpace } from '../../infra/queue/names.js';
import type { Principal } from '../../infra/tenancy/roles.js';
import { buildApp } from '../../gateway/app.js';
import type { GatewayContext } from '../../gateway/context.js';
import { createGatewayMetrics } from '../../gateway/metrics.js';
import { functionVersion } from '../support/function-version.js';

const KEYS: Record<string, Principal> = {
  'admin-key': { keyId: 'k-admin', tenant: 'ops', role: 'admin', functions: null },
  'viewer-key': { keyId: 'k-viewer', tenant: 'acme', role: 'viewer', functions: null },
  'developer-key': { keyId: 'k-dev', tenant: 'acme', role: 'developer', functions: null },
  'invoker-key': { keyId: 'k-inv', tenant: 'acme', role: 'invoker', functions: null },
  'limited-key': { keyId: 'k-lim', tenant: 'acme', role: 'developer', functions: ['other'] },
};

function info(name: string, tenant: string): FunctionInfo {
  return {
    ...functionVersion({ name, tenant, version: 3, timeoutMs: 3000, env: { SECRET: 'hunter2' } }),
    codeSize: 10,
    createdAt: '2025-01-01T00:00:00Z',
    updatedAt: '2025-01-01T00:00:00Z',
  };
}

const FUNCTIONS = new Map([
  ['hello', info('hello', 'acme')],
  ['theirs', info('theirs', 'globex')],
]);

/** The app over fakes: only the key store and the function store answer; anything else used is a bug here. */
async function app(t: Test): Promise<FastifyInstance> {
  const config = loadConfig({});
  const ctx = {
    config,
    keys: keySpace('inject-test'),
    apiKeys: { verify: async (key: string) => KEYS[key] },
    functions: {
      get: async (name: string) => FUNCTIONS.get(name),
      list: async (tenant?: string) => [...FUNCTIONS.values()].filter((fn) => tenant === undefined || fn.tenant === tenant),
    },
    metrics: createGatewayMetrics(),
    functionUrl: (name: string) => `http://fn.test/fn/${name}`,
    functionsOrigin: () => 'http://fn.test',
  } as unknown as GatewayContext;
  const built = buildApp(ctx, {} as Database, createLogger('gateway-inject-test', 'silent'));
  await built.ready();
  t.teardown(() => built.close());
  return built;
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

t.test('an API route without a key is 401, with a bad key 401, in the error body every answer uses', async (t) => {
  const gateway = await app(t);
  const none = await gateway.inject({ method: 'GET', url: '/v1/functions' });
  t.equal(none.statusCode, 401);
  t.same(none.json(), { error: { code: 'Unauthorized', message: 'an API key is required: Authorization: Bearer <key>' } });
  const bad = await gateway.inject({ method: 'GET', url: '/v1/functions', headers: bearer('no-such-key') });
  t.equal(bad.statusCode, 401);
  t.equal(bad.json().error.code, 'Unauthorized');
  const malformed = await gateway.inject({ method: 'GET', url: '/v1/functions', headers: { authorization: 'Basic abc' } });
  t.equal(malformed.statusCode, 401, 'only bearer keys');
});

t.test('a role that may not do an action is 403', async (t) => {
  const gateway = await app(t);
  const res = await gateway.inject({ method: 'GET', url: '/v1/functions', headers: bearer('invoker-key') });
  t.equal(res.statusCode, 403);
  t.same(res.json(), { error: { code: 'Forbidden', message: 'a invoker key may not do this (functions:read)' } });
  const write = await gateway.inject({ method: 'DELETE', url: '/v1/functions/hello', headers: bearer('viewer-key') });
  t.equal(write.statusCode, 403, 'a viewer may not delete');
});

t.test('another tenant’s function is answered like a missing one; a key limited to others is 403', async (t) => {
  const gateway = await app(t);
  const missing = await gateway.inject({ method: 'GET', url: '/v1/functions/nothing', headers: bearer('viewer-key') });
  t.equal(missing.statusCode, 404);
  t.same(missing.json(), { error: { code: 'FunctionNotFound', message: 'function nothing does not exist' } });
  const theirs = await gateway.inject({ method: 'GET', url: '/v1/functions/theirs', headers: bearer('viewer-key') });
  t.equal(theirs.statusCode, 404);
  t.same(theirs.json(), { error: { code: 'FunctionNotFound', message: 'function theirs does not exist' } }, 'the same answer');
  const limited = await gateway.inject({ method: 'GET', url: '/v1/functions/hello', headers: bearer('limited-key') });
  t.equal(limited.statusCode, 403);
  t.equal(limited.json().error.code, 'Forbidden');
  const admin = await gateway.inject({ method: 'GET', url: '/v1/functions/theirs', headers: bearer('admin-key') });
  t.equal(admin.statusCode, 200, 'an admin sees every tenant');
});

t.test('a function is described to its tenant; env values only to roles that may read them', async (t) => {
  const gateway = await app(t);
  const asViewer = await gateway.inject({ method: 'GET', url: '/v1/functions/hello', headers: bearer('viewer-key') });
  t.equal(asViewer.statusCode, 200);
  const viewed = asViewer.json();
  t.match(viewed, { name: 'hello', tenant: 'acme', version: 3, envNames: ['SECRET'], url: 'http://fn.test/fn/hello' });
  t.equal(viewed.env, undefined, 'a viewer sees env names, not values');
  t.equal(viewed.versionId, undefined, 'the internal version id is not shown');
  const asDeveloper = (await gateway.inject({ method: 'GET', url: '/v1/functions/hello', headers: bearer('developer-key') })).json();
  t.same(asDeveloper.env, { SECRET: 'hunter2' });
  const list = (await gateway.inject({ method: 'GET', url: '/v1/functions', headers: bearer('viewer-key') })).json();
  t.same(
    list.functions.map((fn: { name: string }) => fn.name),
    ['hello'],
    'a list shows the caller’s tenant only',
  );
});

t.test('invalid input is 400 InvalidRequest naming the field, before any handler runs', async (t) => {
  const gateway = await app(t);
  const deploy = (body: unknown) =>
    gateway.inject({
      method: 'POST',
      url: '/v1/functions',
      headers: { ...bearer('developer-key'), 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const noName = await deploy({ runtime: 'nodejs20', handler: 'index.handler' });
  t.equal(noName.statusCode, 400);
  t.match(noName.json(), { error: { code: 'InvalidRequest', field: 'name' } });
  const extra = await deploy({ name: 'ok-name', runtime: 'nodejs20', handler: 'index.handler', colour: 'blue' });
  t.equal(extra.statusCode, 400);
  t.match(extra.json(), { error: { code: 'InvalidRequest', field: 'colour', message: 'unknown field colour' } });
  const wrongType = await deploy({ name: 'ok-name', runtime: 'nodejs20', handler: 'index.handler', memoryMb: 'lots' });
  t.equal(wrongType.statusCode, 400);
  t.match(wrongType.json(), { error: { code: 'InvalidRequest', field: 'memoryMb' } });
  const notJson = await gateway.inject({
    method: 'POST',
    url: '/v1/functions',
    headers: { ...bearer('developer-key'), 'content-type': 'application/json' },
    payload: '{"name":',
  });
  t.equal(notJson.statusCode, 400);
  t.match(notJson.json(), { error: { code: 'InvalidRequest', field: 'body' } });
  const rollback = await gateway.inject({
    method: 'POST',
    url: '/v1/functions/hello/rollback',
    headers: { ...bearer('developer-key'), 'content-type': 'application/json' },
    payload: '{"version":"two"}',
  });
  t.equal(rollback.statusCode, 400);
  t.match(rollback.json(), { error: { code: 'InvalidRequest', field: 'version' } });
});

t.test('an unknown route is 404 NotFound in the same error body', async (t) => {
  const gateway = await app(t);
  const res = await gateway.inject({ method: 'GET', url: '/v2/nothing?x=1' });
  t.equal(res.statusCode, 404);
  t.same(res.json(), { error: { code: 'NotFound', message: 'no route GET /v2/nothing' } });
});
