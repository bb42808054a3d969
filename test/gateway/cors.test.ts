/**
 * CORS for function URLs, as Lambda's function URL `Cors` setting: what a deploy may set, the
 * answer to a preflight, and the headers an actual response carries (pure; no server).
 */
import t from 'tap';
import { isSkiffError } from '../../infra/errors.js';
import type { Cors } from '../../infra/functions/version.js';
import { corsOf, isCorsHeader, isPreflight, joinVary, preflightHeaders, responseHeaders } from '../../gateway/http/cors.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function refuses(t: TapTest, input: Partial<Cors>, field: string, message: RegExp): void {
  try {
    corsOf(input);
    t.fail(`expected ${field} to be refused`);
  } catch (error) {
    t.ok(isSkiffError(error, 'InvalidRequest'));
    t.equal((error as { field?: string }).field, field);
    t.match((error as Error).message, message);
  }
}

const site: Cors = corsOf({
  allowOrigins: ['https://App.example.com', 'http://localhost:8080'],
  allowMethods: ['get', 'PUT', 'delete'],
  allowHeaders: ['Content-Type', 'X-Custom'],
  exposeHeaders: ['X-Request-Id'],
  maxAge: 600,
  allowCredentials: true,
});

t.test('a deploy’s setting is checked and normalized', async (t) => {
  t.same(site.allowOrigins, ['https://app.example.com', 'http://localhost:8080'], 'origins compare lower-case');
  t.same(site.allowMethods, ['GET', 'PUT', 'DELETE']);
  t.same(corsOf({}), { allowOrigins: [], allowMethods: [], allowHeaders: [], exposeHeaders: [], maxAge: 0, allowCredentials: false }, 'defaults as Lambda');
  t.same(corsOf({ allowHeaders: ['X-A', 'x-a', 'X-B'] }).allowHeaders, ['X-A', 'X-B'], 'header names without case repeats');
  refuses(t, { allowOrigins: ['*'], allowCredentials: true }, 'cors.allowCredentials', /cannot be true while allowOrigins has \*/);
  refuses(t, { allowOrigins: ['https://a.example.com/path'] }, 'cors.allowOrigins[0]', /no path/);
  refuses(t, { allowOrigins: ['https://ok.example.com', 'example.com'] }, 'cors.allowOrigins[1]', /not \* nor an origin/);
  refuses(t, { allowMethods: ['GE T'] }, 'cors.allowMethods[0]', /HTTP method/);
  refuses(t, { allowHeaders: ['X-Ok', 'bad header'] }, 'cors.allowHeaders[1]', /not a header name/);
  refuses(t, { exposeHeaders: ['a:b'] }, 'cors.exposeHeaders[0]', /not a header name/);
});

t.test('a preflight names the grant for an allowed origin, method and headers', async (t) => {
  const ask = { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-custom, content-type' };
  t.ok(isPreflight('OPTIONS', ask));
  t.notOk(isPreflight('OPTIONS', { origin: 'https://app.example.com' }), 'an OPTIONS without a requested method is the function’s');
  t.notOk(isPreflight('GET', ask));
  t.same(preflightHeaders(site, ask), {
    'access-control-allow-origin': 'https://app.example.com',
    'access-control-allow-methods': 'GET, PUT, DELETE',
    'access-control-allow-headers': 'Content-Type, X-Custom',
    'access-control-allow-credentials': 'true',
    'access-control-max-age': '600',
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  });
  const refused = ['access-control-allow-origin'];
  t.notOk(
    refused.some((h) => h in preflightHeaders(site, { ...ask, origin: 'https://evil.example.com' })),
    'another origin gets no grant',
  );
  t.notOk(
    refused.some((h) => h in preflightHeaders(site, { ...ask, 'access-control-request-method': 'PATCH' })),
    'a method not allowed gets none',
  );
  t.notOk(
    refused.some((h) => h in preflightHeaders(site, { ...ask, 'access-control-request-headers': 'x-other' })),
    'a header not allowed gets none',
  );
  t.ok(
    'access-control-allow-origin' in preflightHeaders(site, { ...ask, 'access-control-request-method': 'POST', 'access-control-request-headers': 'X-CUSTOM' }),
    'a safelisted method needs no listing; header names compare case-insensitively',
  );
});

t.test('wildcards: any origin, method, header', async (t) => {
  const open = corsOf({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'] });
  t.same(preflightHeaders(open, { origin: 'https://x.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'x-a,x-b' }), {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': '*',
    'access-control-allow-headers': 'x-a, x-b',
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  });
  t.same(responseHeaders(open, { origin: 'https://x.example' }), { 'access-control-allow-origin': '*' }, 'the same `*` for every origin: no Vary');
  // With credentials `*` is read literally by browsers: the request's own method is named.
  const credentialed = corsOf({ allowOrigins: ['https://a.example'], allowMethods: ['*'], allowCredentials: true });
  t.equal(preflightHeaders(credentialed, { origin: 'https://a.example', 'access-control-request-method': 'PATCH' })['access-control-allow-methods'], 'PATCH');
});

t.test('an actual response carries the grant and the exposed headers for an allowed origin only', async (t) => {
  t.same(responseHeaders(site, { origin: 'http://localhost:8080' }), {
    'access-control-allow-origin': 'http://localhost:8080',
    'access-control-expose-headers': 'X-Request-Id',
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
  });
  t.same(responseHeaders(site, { origin: 'http://localhost:9999' }), { vary: 'Origin' });
  t.same(responseHeaders(site, {}), { vary: 'Origin' }, 'no Origin: not a CORS request');
  t.ok(isCorsHeader('Access-Control-Allow-Origin'));
  t.notOk(isCorsHeader('content-type'));
  t.equal(joinVary('Origin', 'accept-encoding, origin'), 'Origin, accept-encoding');
});
