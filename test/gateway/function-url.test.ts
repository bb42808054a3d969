import t from 'tap';
import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';
import serverless from 'serverless-http';
import Fastify from 'fastify';
import { trace } from '@opentelemetry/api';
import { fromFunctionResult, toFunctionUrlEvent } from '../../gateway/http/function-url.js';
import type { FunctionUrlRequest } from '../../gateway/http/function-url.js';
import { functionUrl, functionsOrigin, routeFunction } from '../../gateway/http/function-origin.js';
import { buildFunctionsApp } from '../../gateway/functions-app.js';
import { movedFunctionUrlRoutes } from '../../gateway/routes/moved-function-urls.js';
import { registerErrorMapping } from '../../gateway/errors.js';
import { createGatewayMetrics } from '../../gateway/metrics.js';
import type { GatewayContext } from '../../gateway/context.js';
import { Redis } from 'ioredis';
import { keySpace } from '../../infra/queue/names.js';
import type { FunctionInfo } from '../../infra/db/function-store.js';
import type { InvocationOutcome } from '../../infra/queue/jobs.js';
import type { Principal } from '../../infra/tenancy/roles.js';
import { loadConfig, type Config } from '../../infra/config.js';
import { createLogger } from '../../infra/log.js';
import { isSkiffError } from '../../infra/errors.js';

const NOW = new Date(Date.UTC(2020, 2, 12, 19, 3, 58, 390));

function request(overrides: Partial<FunctionUrlRequest> & { url: string }): FunctionUrlRequest {
  return { method: 'GET', headers: { host: 'localhost:8080', 'user-agent': 'curl/8.0' }, body: undefined, remoteAddress: '10.0.0.7', ...overrides };
}

t.test('a GET becomes a payload 2.0 event', async (t) => {
  const event = toFunctionUrlEvent(
    request({
      url: '/fn/hello/users/42?x=1&x=2&name=J%C3%B6rg+K&flag',
      headers: { host: 'hello.skiff.local:8080', 'user-agent': 'curl/8.0', accept: '*/*', 'x-multi': ['a', 'b'], cookie: 'a=1; b=2;  c=3' },
    }),
    'hello',
    '/fn/hello',
    'req-1',
    NOW,
  );
  t.same(event, {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/users/42',
    rawQueryString: 'x=1&x=2&name=J%C3%B6rg+K&flag',
    cookies: ['a=1', 'b=2', 'c=3'],
    headers: { host: 'hello.skiff.local:8080', 'user-agent': 'curl/8.0', accept: '*/*', 'x-multi': 'a,b' },
    queryStringParameters: { x: '1,2', name: 'Jörg K', flag: '' },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'hello',
      domainName: 'hello.skiff.local:8080',
      domainPrefix: 'hello',
      http: { method: 'GET', path: '/users/42', protocol: 'HTTP/1.1', sourceIp: '10.0.0.7', userAgent: 'curl/8.0' },
      requestId: 'req-1',
      routeKey: '$default',
      stage: '$default',
      time: '12/Mar/2020:19:03:58 +0000',
      timeEpoch: NOW.getTime(),
    },
    isBase64Encoded: false,
  });
  t.notOk('body' in event, 'no body key without a body');
});

t.test('the path after the prefix, and no query or cookies keys when there are none', async (t) => {
  for (const [url, rawPath] of [
    ['/fn/hello', '/'],
    ['/fn/hello/', '/'],
    ['/fn/hello?', '/'],
    ['/fn/hello/a%20b/', '/a%20b/'],
  ] as const) {
    const event = toFunctionUrlEvent(request({ url }), 'hello', '/fn/hello', 'r', NOW);
    t.equal(event.rawPath, rawPath, url);
    t.equal(event.requestContext.http.path, rawPath);
    t.notOk('queryStringParameters' in event);
    t.notOk('cookies' in event);
  }
  t.throws(() => toFunctionUrlEvent(request({ url: '/fn/helloworld' }), 'hello', '/fn/hello', 'r', NOW));
});

t.test('repeated headers are joined with commas; framing headers are replaced by content-length', async (t) => {
  const headers: IncomingHttpHeaders = { host: 'h', 'X-Upper': 'v', 'transfer-encoding': 'chunked', connection: 'keep-alive', 'content-type': 'text/plain' };
  const event = toFunctionUrlEvent(request({ method: 'post', url: '/fn/h/', headers, body: Buffer.from('héllo') }), 'h', '/fn/h', 'r', NOW);
  t.same(event.headers, { host: 'h', 'x-upper': 'v', 'content-type': 'text/plain', 'content-length': '6' });
  t.equal(event.requestContext.http.method, 'POST');
  t.equal(event.body, 'héllo');
  t.equal(event.isBase64Encoded, false);
});

t.test('text-like bodies are strings, others base64', async (t) => {
  const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80]);
  const cases: Array<[contentType: string | undefined, body: Buffer, text: boolean]> = [
    ['text/html; charset=utf-8', Buffer.from('<p>hi</p>'), true],
    ['application/json', Buffer.from('{"a":1}'), true],
    ['application/vnd.api+json', Buffer.from('{}'), true],
    ['application/xml', Buffer.from('<a/>'), true],
    ['application/x-www-form-urlencoded', Buffer.from('a=1&b=2'), true],
    ['application/javascript', Buffer.from('1;'), true],
    ['Application/JSON', Buffer.from('{}'), true],
    ['application/octet-stream', bytes, false],
    ['image/png', bytes, false],
    [undefined, Buffer.from('plain but untyped'), false],
    // Declared as text but not UTF-8: a string would not survive the round trip.
    ['text/plain; charset=latin1', Buffer.from([0x63, 0x61, 0x66, 0xe9]), false],
  ];
  for (const [contentType, body, text] of cases) {
    const headers: IncomingHttpHeaders = contentType === undefined ? {} : { 'content-type': contentType };
    const event = toFunctionUrlEvent(request({ method: 'POST', url: '/fn/a', headers, body }), 'a', '/fn/a', 'r', NOW);
    t.equal(event.isBase64Encoded, !text, String(contentType));
    t.same(Buffer.from(event.body ?? '', text ? 'utf8' : 'base64'), body);
  }
  const empty = toFunctionUrlEvent(
    request({ method: 'POST', url: '/fn/a', headers: { 'content-length': '0' }, body: Buffer.alloc(0) }),
    'a',
    '/fn/a',
    'r',
    NOW,
  );
  t.notOk('body' in empty);
  t.notOk('content-length' in empty.headers);
});

t.test('a value with a statusCode is a response description', async (t) => {
  const res = fromFunctionResult({
    statusCode: 201,
    headers: { 'Content-Type': 'text/plain', 'X-Count': 3, 'X-Flag': true, 'Content-Length': '999', 'Transfer-Encoding': 'chunked', 'Set-Cookie': 'h=1' },
    cookies: ['a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT', 'b=2'],
    body: 'created',
  });
  t.same(res, {
    statusCode: 201,
    headers: { 'content-type': 'text/plain', 'x-count': '3', 'x-flag': 'true' },
    cookies: ['h=1', 'a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT', 'b=2'],
    body: Buffer.from('created'),
  });
  t.same(fromFunctionResult({ statusCode: 204 }), { statusCode: 204, headers: { 'content-type': 'application/json' }, cookies: [], body: Buffer.alloc(0) });
  const binary = fromFunctionResult({
    statusCode: 200,
    headers: { 'content-type': 'image/png' },
    body: Buffer.from([1, 2, 255]).toString('base64'),
    isBase64Encoded: true,
  });
  t.same(binary.body, Buffer.from([1, 2, 255]));
});

t.test('any other value is the JSON body of a 200', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ message: 'hi' }, '{"message":"hi"}'],
    ['Hello, world!', '"Hello, world!"'],
    [42, '42'],
    [false, 'false'],
    [[1, 2], '[1,2]'],
    [{ status: 404 }, '{"status":404}'],
    [null, ''],
    [undefined, ''],
  ];
  for (const [value, body] of cases) {
    const res = fromFunctionResult(value);
    t.equal(res.statusCode, 200);
    t.same(res.headers, { 'content-type': 'application/json' });
    t.equal(res.body.toString('utf8'), body, JSON.stringify(value) ?? 'undefined');
  }
});

t.test('a malformed response description is a FunctionError', async (t) => {
  const bad: unknown[] = [
    { statusCode: 99 },
    { statusCode: 600 },
    { statusCode: 200.5 },
    { statusCode: '200' },
    { statusCode: null },
    { statusCode: 200, body: { a: 1 } },
    { statusCode: 200, headers: 'x' },
    { statusCode: 200, headers: { 'bad name': 'x' } },
    { statusCode: 200, headers: { 'x-a': 'line\r\nInjected: 1' } },
    { statusCode: 200, headers: { 'x-a': { nested: true } } },
    { statusCode: 200, cookies: 'a=1' },
    { statusCode: 200, cookies: ['a=1\nb'] },
  ];
  for (const value of bad) {
    const err = (() => {
      try {
        fromFunctionResult(value);
        return null;
      } catch (e) {
        return e;
      }
    })();
    t.ok(isSkiffError(err) && err.code === 'FunctionError', JSON.stringify(value));
    t.match(err instanceof Error ? err.message : '', /invalid HTTP response/);
  }
});

// ---------------------------------------------------------------------------------------------
// The caller's secret never reaches function code; x-skiff-* are the platform's.

const CALLER: Principal = { keyId: 'key_abc', tenant: 'acme', role: 'invoker', functions: null };
const SECRET = 'sk_live_secret_value';

t.test('a verified caller is named in the IAM authorizer shape and its credential is removed', async (t) => {
  const event = toFunctionUrlEvent(
    request({ url: '/fn/locked/x', headers: { host: 'h', authorization: `Bearer ${SECRET}`, 'x-other': 'kept' } }),
    'locked',
    '/fn/locked',
    'r',
    NOW,
    { tenant: 'acme', caller: CALLER },
  );
  t.notOk('authorization' in event.headers, 'the authorization header is gone');
  t.equal(event.headers['x-other'], 'kept');
  t.notOk(JSON.stringify(event).includes(SECRET), 'the secret is nowhere in the event');
  t.equal(event.requestContext.accountId, 'acme', "accountId is the function's tenant");
  t.same(event.requestContext.authorizer, {
    iam: {
      accessKey: 'key_abc',
      accountId: 'acme',
      callerId: 'key_abc',
      cognitoIdentity: null,
      principalOrgId: null,
      userArn: 'arn:skiff:iam::acme:key/key_abc',
      userId: 'key_abc',
      role: 'invoker',
    },
  });
});

t.test('without a verified caller (auth "none") headers pass untouched and there is no authorizer', async (t) => {
  const headers = { host: 'h', authorization: 'Bearer app-token' };
  const event = toFunctionUrlEvent(request({ url: '/fn/open', headers }), 'open', '/fn/open', 'r', NOW, { tenant: 'acme' });
  t.equal(event.headers['authorization'], 'Bearer app-token', 'an app behind serverless-http does its own bearer auth');
  t.notOk('authorizer' in event.requestContext);
  t.equal(event.requestContext.accountId, 'acme');
  t.equal(toFunctionUrlEvent(request({ url: '/fn/open' }), 'open', '/fn/open', 'r', NOW).requestContext.accountId, 'anonymous');
});

t.test("a function's x-skiff-* response headers are dropped, in any case; its cookies are kept", async (t) => {
  const res = fromFunctionResult({
    statusCode: 200,
    headers: {
      'x-skiff-cold-start': 'forged',
      'X-Skiff-Invocation-Id': 'forged',
      'X-SKIFF-TRACE-ID': 'f',
      'x-skiff-anything': 'x',
      'x-skiffy': 'kept',
      'Set-Cookie': 'a=1',
    },
    cookies: ['b=2'],
    body: 'ok',
  });
  t.same(res.headers, { 'x-skiffy': 'kept', 'content-type': 'application/json' });
  t.same(res.cookies, ['a=1', 'b=2'], "cookies are legitimate on the function's own origin");
});

t.test('function origins: path-based by default, host-based with a domain, the bound port for port 0', async (t) => {
  const config = (env: Record<string, string>): Readonly<Config> => loadConfig({ SKIFF_STATE_DIR: '/tmp/x', ...env });
  t.equal(functionsOrigin(config({})), 'http://127.0.0.1:8081');
  t.equal(functionUrl(config({}), 'hello'), 'http://127.0.0.1:8081/fn/hello');
  t.equal(functionUrl(config({ SKIFF_FUNCTIONS_PORT: '0' }), 'hello', 40123), 'http://127.0.0.1:40123/fn/hello');
  t.equal(functionsOrigin(config({ SKIFF_FUNCTIONS_HOST: '0.0.0.0', SKIFF_FUNCTIONS_PORT: '9000' })), 'http://127.0.0.1:9000');
  t.equal(functionUrl(config({ SKIFF_FUNCTIONS_URL: 'https://fn.example.com/' }), 'hello'), 'https://fn.example.com/fn/hello');
  t.equal(functionUrl(config({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test' }), 'hello'), 'http://hello.fn.test:8081/');
  t.equal(functionUrl(config({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test', SKIFF_FUNCTIONS_PORT: '0' }), 'hello', 40123), 'http://hello.fn.test:40123/');
  t.equal(
    functionUrl(config({ SKIFF_FUNCTIONS_DOMAIN: 'skiff-fn.example', SKIFF_FUNCTIONS_URL: 'https://skiff-fn.example' }), 'hello'),
    'https://hello.skiff-fn.example/',
  );
  t.equal(functionUrl(config({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test', SKIFF_FUNCTIONS_URL: 'https://fn.test:8443' }), 'a-b'), 'https://a-b.fn.test:8443/');
  t.equal(
    functionsOrigin(config({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test', SKIFF_FUNCTIONS_URL: 'https://fn.test' })),
    'https://fn.test',
    '/fn/ paths keep working there',
  );
});

t.test('which function a request to the functions listener calls', async (t) => {
  t.same(routeFunction(undefined, 'h', '/fn/hello'), { name: 'hello', prefix: '/fn/hello' });
  t.same(routeFunction(undefined, 'h', '/fn/hello/a/b?x=1'), { name: 'hello', prefix: '/fn/hello' });
  t.same(routeFunction(undefined, 'h', '/fn/hello?x=1'), { name: 'hello', prefix: '/fn/hello' });
  t.equal(routeFunction(undefined, 'h', '/fn/'), undefined);
  t.equal(routeFunction(undefined, 'h', '/fn/Hello'), undefined, 'not a function name');
  t.equal(routeFunction(undefined, 'h', '/v1/functions'), undefined);
  t.equal(routeFunction(undefined, 'hello.fn.test', '/'), undefined, 'no domain configured: hosts mean nothing');
  t.same(routeFunction('fn.test', 'hello.fn.test', '/'), { name: 'hello', prefix: '' });
  t.same(routeFunction('fn.test', 'Hello.FN.test.:8081', '/a?b'), { name: 'hello', prefix: '' });
  t.same(routeFunction('fn.test', 'hello.fn.test', '/fn/other'), { name: 'hello', prefix: '' }, "on a function's host every path is its own");
  t.same(routeFunction('fn.test', 'fn.test', '/fn/other'), { name: 'other', prefix: '/fn/other' }, 'the bare domain serves /fn/ paths');
  t.equal(routeFunction('fn.test', 'a.b.fn.test', '/'), undefined, 'a deeper name is no function');
  t.equal(routeFunction('fn.test', 'evilfn.test', '/'), undefined);
  t.equal(routeFunction('fn.test', 'hello.fn.test', '*'), undefined);
});

let contexts = 0;

/** A gateway context whose call path is faked: one function, and the outcome each call gets. */
function fakeContext(env: Record<string, string>, fn: Partial<FunctionInfo>, answer: (event: unknown) => unknown) {
  const config = loadConfig({ SKIFF_STATE_DIR: '/tmp/x', SKIFF_FUNCTIONS_PORT: '0', ...env });
  const info = { name: 'hello', version: 1, tenant: 'acme', auth: 'none', env: {}, codeSize: 0, createdAt: '', updatedAt: '', ...fn } as FunctionInfo;
  const events: unknown[] = [];
  // The per-tenant call limit counts in Redis: the real one the test runner started.
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6390', { maxRetriesPerRequest: null });
  t.teardown(() => redis.quit());
  const ctx = {
    config,
    keys: keySpace(`unit-${process.pid}-${contexts++}`),
    redis,
    tenantQuotas: { get: async () => config.tenantDefaults },
    current: { get: async (name: string) => (name === info.name ? info : undefined) },
    apiKeys: { verify: async (key: string) => (key === SECRET ? CALLER : undefined) },
    dispatcher: {
      call: async (_fn: unknown, event: unknown): Promise<InvocationOutcome> => {
        events.push(event);
        return { id: 'inv_real', ok: true, value: answer(event), cold: true, workerId: 'w', timings: { queuedMs: 0, acquireMs: 0, runMs: 0 } };
      },
    },
    tracer: trace.getTracer('test'),
    metrics: createGatewayMetrics(),
    functionUrl: (name: string) => functionUrl(config, name, 40123),
    functionsOrigin: () => functionsOrigin(config, 40123),
  } as unknown as GatewayContext;
  return { ctx, events };
}

const log = createLogger('test', 'error');

t.test('the functions app: platform headers win, the secret stays out, nothing but function URLs', async (t) => {
  const { ctx, events } = fakeContext({}, { auth: 'key', tenant: 'acme' }, () => ({
    statusCode: 200,
    headers: { 'x-skiff-cold-start': 'forged', 'X-Skiff-Invocation-Id': 'forged', 'x-skiff-anything': 'x', traceresponse: 'forged', 'x-app': 'a' },
    cookies: ['session=1; HttpOnly'],
    body: 'hi',
  }));
  const app = buildFunctionsApp(ctx, log);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/fn/hello/path?q=1', headers: { authorization: `Bearer ${SECRET}` } });
  t.equal(res.statusCode, 200);
  t.equal(res.body, 'hi');
  t.equal(res.headers['x-skiff-cold-start'], 'true');
  t.equal(res.headers['x-skiff-invocation-id'], 'inv_real');
  t.notOk('x-skiff-anything' in res.headers);
  t.match(res.headers['traceresponse'], /^00-[0-9a-f]{32}-/, "the platform's traceresponse");
  t.match(res.headers['x-skiff-trace-id'], /^[0-9a-f]{32}$/);
  t.equal(res.headers['x-app'], 'a');
  t.same(res.headers['set-cookie'], ['session=1; HttpOnly']);
  t.equal(events.length, 1);
  t.notOk(JSON.stringify(events[0]).includes(SECRET), 'the function never sees the key');
  t.match(events[0], {
    rawPath: '/path',
    requestContext: { accountId: 'acme', authorizer: { iam: { accessKey: 'key_abc', accountId: 'acme', role: 'invoker' } } },
  });

  t.equal((await app.inject({ method: 'GET', url: '/fn/hello' })).statusCode, 401, 'an auth "key" function without a key');
  for (const url of ['/v1/functions', '/ui', '/metrics', '/healthz', '/', '/fn/nope']) {
    const other = await app.inject({ method: 'GET', url });
    t.equal(other.statusCode, 404, url);
  }
  t.equal(events.length, 1, 'no other request reached the function');
});

t.test('the functions app with a domain: <name>.<domain> calls the function with the whole path', async (t) => {
  const { ctx, events } = fakeContext({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test' }, {}, (event) => event);
  const app = buildFunctionsApp(ctx, log);
  t.teardown(() => app.close());
  const root = await app.inject({ method: 'GET', url: '/', headers: { host: 'hello.fn.test' } });
  t.equal(root.statusCode, 200);
  t.match(root.json(), { rawPath: '/', requestContext: { domainName: 'hello.fn.test', domainPrefix: 'hello', accountId: 'acme' } });
  const deep = await app.inject({
    method: 'POST',
    url: '/fn/other/x?y=1',
    headers: { host: 'hello.fn.test:8081', 'content-type': 'text/plain' },
    payload: 'body',
  });
  t.match(deep.json(), { rawPath: '/fn/other/x', rawQueryString: 'y=1', body: 'body' }, "/fn/ on a function's host is that function's path");
  t.equal((await app.inject({ method: 'GET', url: '/fn/hello', headers: { host: '127.0.0.1:8081' } })).statusCode, 200, '/fn/<name> keeps working');
  t.equal((await app.inject({ method: 'GET', url: '/', headers: { host: 'nope.fn.test' } })).statusCode, 404);
  t.equal(events.length, 3);
});

t.test("the API's origin answers /fn/ with a 404 naming the functions origin", async (t) => {
  const { ctx } = fakeContext({}, {}, () => 'never');
  const app = Fastify();
  registerErrorMapping(app);
  movedFunctionUrlRoutes(app, ctx);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: '/fn/hello/x', headers: { 'content-type': 'image/png' }, payload: Buffer.alloc(10) });
  t.equal(res.statusCode, 404);
  t.same(res.json(), { error: { code: 'NotFound', message: 'function URLs are served at http://127.0.0.1:40123/fn/hello' } });
  t.same((await app.inject({ method: 'GET', url: '/fn' })).json(), {
    error: { code: 'NotFound', message: 'function URLs are served at http://127.0.0.1:40123/fn/<name>' },
  });
  t.equal((await app.inject({ method: 'GET', url: '/fnx' })).statusCode, 404);
});

// ---------------------------------------------------------------------------------------------
// An Express 5 app wrapped by serverless-http, unchanged, as a user would deploy it.

interface ExpressRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
  headers: IncomingHttpHeaders;
  path: string;
  originalUrl: string;
}
interface ExpressResponse {
  status(code: number): ExpressResponse;
  set(name: string, value: string): ExpressResponse;
  type(type: string): ExpressResponse;
  cookie(name: string, value: string): ExpressResponse;
  json(body: unknown): void;
  send(body: string | Buffer): void;
}
type ExpressHandler = (req: ExpressRequest, res: ExpressResponse) => void;
interface ExpressApp {
  /** An app is itself a request listener, which is how serverless-http recognizes it. */
  (req: unknown, res: unknown): void;
  get(path: string, handler: ExpressHandler): void;
  post(path: string, ...handlers: unknown[]): void;
}
type Express = () => ExpressApp;
// express ships no types and @types/express is not installed: describe the little used here.
const express = createRequire(import.meta.url)('express') as Express;

function makeApp(): ExpressApp {
  const app = express();
  app.get('/users/:id', (req, res) => {
    res
      .set('x-user', req.params['id'] ?? '')
      .cookie('seen', 'yes')
      .json({ id: req.params['id'], query: req.query, path: req.path, url: req.originalUrl, cookie: req.headers.cookie });
  });
  app.get('/two-cookies', (_req, res) => {
    res.cookie('a', '1').cookie('b', '2').send('ok');
  });
  // serverless-http 3.2.0 hands Express the whole body as a Buffer in req.body, and body-parser 2
  // (Express 5) then skips the request as already read: express.json() is a no-op under it, on
  // AWS too (serverless-http issue #274, fixed after 3.2.0). Apps parse req.body themselves.
  app.post('/echo', (req: ExpressRequest, res: ExpressResponse) => {
    const raw = req.body as Buffer;
    res.status(201).json({
      got: JSON.parse(raw.toString('utf8')) as unknown,
      type: req.headers['content-type'],
      length: req.headers['content-length'],
      chunked: req.headers['transfer-encoding'] ?? null,
    });
  });
  app.post('/bytes', (req: ExpressRequest, res: ExpressResponse) => {
    const body = req.body as Buffer;
    res.type('application/octet-stream').send(Buffer.from([...body].reverse()));
  });
  app.get('/image', (_req, res) => {
    res.type('image/png').send(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe]));
  });
  return app;
}

t.test('an Express app behind serverless-http runs unchanged', async (t) => {
  const handler = serverless(makeApp(), { binary: ['application/octet-stream', 'image/*'] });
  const call = async (req: FunctionUrlRequest): Promise<ReturnType<typeof fromFunctionResult>> => {
    const event = toFunctionUrlEvent(req, 'app', '/fn/app', 'req-42', NOW);
    // Through JSON, as the event and the result travel between gateway, worker and container.
    const result: unknown = await handler(JSON.parse(JSON.stringify(event)), {});
    return fromFunctionResult(JSON.parse(JSON.stringify(result)));
  };

  t.test('GET with a path parameter, a query and cookies', async (t) => {
    const res = await call(request({ url: '/fn/app/users/42?x=1', headers: { host: 'localhost:8080', cookie: 'session=abc; theme=dark' } }));
    t.equal(res.statusCode, 200);
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    t.equal(res.headers['x-user'], '42');
    t.equal(res.headers['x-powered-by'], 'Express');
    t.notOk('content-length' in res.headers, 'the gateway frames the body itself');
    // A single Set-Cookie comes back in serverless-http's headers; it is moved to cookies.
    t.same(res.cookies, ['seen=yes; Path=/']);
    t.notOk('set-cookie' in res.headers);
    t.same(JSON.parse(res.body.toString('utf8')), { id: '42', query: { x: '1' }, path: '/users/42', url: '/users/42?x=1', cookie: 'session=abc; theme=dark' });
  });

  t.test('several Set-Cookie values come back as cookies', async (t) => {
    const res = await call(request({ url: '/fn/app/two-cookies' }));
    t.equal(res.statusCode, 200);
    t.same(res.cookies, ['a=1; Path=/', 'b=2; Path=/']);
    t.equal(res.body.toString('utf8'), 'ok');
  });

  t.test('POST with a JSON body', async (t) => {
    const body = Buffer.from(JSON.stringify({ name: 'Jörg', n: [1, 2] }));
    const res = await call(
      request({
        method: 'POST',
        url: '/fn/app/echo',
        headers: { host: 'localhost', 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body,
      }),
    );
    t.equal(res.statusCode, 201);
    t.same(JSON.parse(res.body.toString('utf8')), { got: { name: 'Jörg', n: [1, 2] }, type: 'application/json', length: String(body.length), chunked: null });
  });

  t.test('binary request and response bodies round-trip', async (t) => {
    const body = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const res = await call(request({ method: 'POST', url: '/fn/app/bytes', headers: { host: 'localhost', 'content-type': 'application/octet-stream' }, body }));
    t.equal(res.statusCode, 200);
    t.equal(res.headers['content-type'], 'application/octet-stream');
    t.same(res.body, Buffer.from([0xff, 0xfe, 2, 1, 0]));

    const image = await call(request({ url: '/fn/app/image' }));
    t.equal(image.headers['content-type'], 'image/png');
    t.same(image.body, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe]));
  });

  t.test("an unknown route is the app's own 404", async (t) => {
    const res = await call(request({ url: '/fn/app/nope' }));
    t.equal(res.statusCode, 404);
    t.match(res.headers['content-type'], /^text\/html/);
  });
});
