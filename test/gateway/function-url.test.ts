import t from 'tap';
import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';
import serverless from 'serverless-http';
import { fromFunctionResult, toFunctionUrlEvent } from '../../gateway/http/function-url.js';
import type { FunctionUrlRequest } from '../../gateway/http/function-url.js';
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
  for (const [url, rawPath] of [['/fn/hello', '/'], ['/fn/hello/', '/'], ['/fn/hello?', '/'], ['/fn/hello/a%20b/', '/a%20b/']] as const) {
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
  const empty = toFunctionUrlEvent(request({ method: 'POST', url: '/fn/a', headers: { 'content-length': '0' }, body: Buffer.alloc(0) }), 'a', '/fn/a', 'r', NOW);
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
  const binary = fromFunctionResult({ statusCode: 200, headers: { 'content-type': 'image/png' }, body: Buffer.from([1, 2, 255]).toString('base64'), isBase64Encoded: true });
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
    res.set('x-user', req.params['id'] ?? '').cookie('seen', 'yes').json({ id: req.params['id'], query: req.query, path: req.path, url: req.originalUrl, cookie: req.headers.cookie });
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
    const res = await call(request({ method: 'POST', url: '/fn/app/echo', headers: { host: 'localhost', 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body }));
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

  t.test('an unknown route is the app\'s own 404', async (t) => {
    const res = await call(request({ url: '/fn/app/nope' }));
    t.equal(res.statusCode, 404);
    t.match(res.headers['content-type'], /^text\/html/);
  });
});
