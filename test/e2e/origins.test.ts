/**
 * Origins and what crosses them (docs/SECURITY.md, "Origins"): function URLs are served on a
 * listener of their own, the API's origin answers /fn/ with a 404 naming it; a key the platform
 * verified never reaches function code (the caller is named instead); `x-skiff-*` response
 * headers are the platform's; a functions domain routes `<name>.<domain>` to the function.
 */
import t from 'tap';
import http from 'node:http';
import { startPlatform, type Platform } from '../support/platform.js';
import { client, eventually } from '../support/api.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(async () => {
  await platform?.stop();
});

const { deploy, invoke } = client(() => platform);

/** Everything the function can see: its event, its environment, its context. */
const REVEAL = `exports.handler = async (event, context) => ({ event, env: process.env, context });`;

const FORGER = `exports.handler = async () => ({
  statusCode: 200,
  headers: { 'x-skiff-cold-start': 'forged', 'X-Skiff-Invocation-Id': 'forged', 'x-skiff-anything': 'x', 'content-type': 'text/plain' },
  cookies: ['session=fn; Path=/; HttpOnly'],
  body: 'forged?',
});`;

/** A GET with any headers, Host included (fetch does not let a caller choose the Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a key the platform verified never reaches the function; the caller is named', async (t) => {
  t.equal((await deploy({ name: 'reveal-key', auth: 'key' }, { 'index.js': REVEAL })).status, 201);
  const secret = platform.key.slice(`sk_${platform.keyId}_`.length);
  t.ok(secret.length >= 32, 'the secret part of the key');

  const described = (await (await fetch(`${platform.url}/v1/functions/reveal-key`, { headers: platform.auth })).json()) as { url: string };
  t.equal(described.url, `${platform.fnUrl}/fn/reveal-key`, 'describe names the absolute URL on the functions origin');

  t.equal((await fetch(`${platform.fnUrl}/fn/reveal-key/x`)).status, 401, 'no key: 401');
  const byUrl = await fetch(`${platform.fnUrl}/fn/reveal-key/x?y=1`, { headers: { ...platform.auth, 'x-visible': 'yes' } });
  t.equal(byUrl.status, 200);
  const text = await byUrl.text();
  t.notOk(text.includes(secret), 'the secret is nowhere in what the function saw (by URL)');
  t.notOk(text.includes(platform.key), 'nor the whole key');
  const seen = JSON.parse(text) as {
    event: { headers: Record<string, string>; requestContext: { accountId: string; authorizer?: { iam: Record<string, unknown> } } };
  };
  t.notOk('authorization' in seen.event.headers, 'the authorization header is removed');
  t.equal(seen.event.headers['x-visible'], 'yes', 'other headers pass');
  t.equal(seen.event.requestContext.accountId, 'default', "accountId is the function's tenant");
  t.match(seen.event.requestContext.authorizer, {
    iam: {
      accessKey: platform.keyId,
      accountId: 'default',
      callerId: platform.keyId,
      userId: platform.keyId,
      role: 'admin',
      userArn: `arn:skiff:iam::default:key/${platform.keyId}`,
    },
  });

  const byInvoke = await invoke('reveal-key', { hello: 'there' }, platform.auth);
  t.equal(byInvoke.status, 200);
  const invoked = await byInvoke.text();
  t.notOk(invoked.includes(secret), 'the secret is nowhere in what the function saw (by invoke)');
  t.match(JSON.parse(invoked), { event: { hello: 'there' } });
});

t.test('an auth "none" function sees its authorization header untouched', async (t) => {
  t.equal((await deploy({ name: 'reveal-open' }, { 'index.js': REVEAL })).status, 201);
  const res = await fetch(`${platform.fnUrl}/fn/reveal-open`, { headers: { authorization: 'Bearer app-own-token' } });
  t.equal(res.status, 200);
  const seen = (await res.json()) as { event: { headers: Record<string, string>; requestContext: Record<string, unknown> } };
  t.equal(seen.event.headers['authorization'], 'Bearer app-own-token', 'an app does its own bearer auth');
  t.notOk('authorizer' in seen.event.requestContext);
});

t.test("x-skiff-* response headers are the platform's alone; cookies are the function's", async (t) => {
  t.equal((await deploy({ name: 'forger' }, { 'index.js': FORGER })).status, 201);
  for (const expected of ['true', 'false']) {
    const res = await fetch(`${platform.fnUrl}/fn/forger`);
    t.equal(res.status, 200);
    t.equal(await res.text(), 'forged?');
    t.equal(res.headers.get('x-skiff-cold-start'), expected, `the real cold-start flag (${expected})`);
    t.equal(res.headers.get('x-skiff-anything'), null, "the function's own x-skiff-* header is dropped");
    t.match(res.headers.get('x-skiff-trace-id'), /^[0-9a-f]{32}$/);
    t.same(res.headers.getSetCookie(), ['session=fn; Path=/; HttpOnly'], 'cookies are legitimate on the functions origin');
    const id = res.headers.get('x-skiff-invocation-id') ?? '';
    t.not(id, 'forged');
    // The platform's record of that id names this function: the id is the real one.
    t.ok(
      await eventually(async () => {
        const record = await fetch(`${platform.url}/v1/invocations/${encodeURIComponent(id)}`, { headers: platform.auth });
        return record.ok && ((await record.json()) as { functionName?: string }).functionName === 'forger';
      }),
      `invocation ${id} is on record for forger`,
    );
  }
});

t.test("the API's origin no longer serves /fn/; the functions origin does", async (t) => {
  t.equal((await deploy({ name: 'where' }, { 'index.js': REVEAL })).status, 201);
  const moved = await fetch(`${platform.url}/fn/where/x`);
  t.equal(moved.status, 404);
  t.same(await moved.json(), { error: { code: 'NotFound', message: `function URLs are served at ${platform.fnUrl}/fn/where` } });
  const served = await fetch(`${platform.fnUrl}/fn/where/x`);
  t.equal(served.status, 200);
  t.match(await served.json(), { event: { rawPath: '/x' } });
});

t.test('the functions origin serves nothing but function URLs', async (t) => {
  for (const path of ['/v1/functions', '/ui', '/metrics', '/healthz', '/openapi.json', '/']) {
    const res = await fetch(`${platform.fnUrl}${path}`, { headers: platform.auth });
    t.equal(res.status, 404, `${path} is not on the functions origin`);
    await res.arrayBuffer();
  }
});

t.test('with a functions domain, <name>.<domain> calls the function at its whole path', async (t) => {
  const hosted = await startPlatform({ SKIFF_FUNCTIONS_DOMAIN: 'fn.test' });
  t.teardown(() => hosted.stop());
  const api = client(() => hosted);
  t.equal((await api.deploy({ name: 'hello' }, { 'index.js': REVEAL })).status, 201);
  const port = new URL(hosted.fnUrl).port;
  const described = (await (await fetch(`${hosted.url}/v1/functions/hello`, { headers: hosted.auth })).json()) as { url: string };
  t.equal(described.url, `http://hello.fn.test:${port}/`, 'its URL is its own host');

  const root = await get(`${hosted.fnUrl}/`, { host: `hello.fn.test:${port}` });
  t.equal(root.status, 200);
  t.match(JSON.parse(root.body), {
    event: { rawPath: '/', requestContext: { domainName: `hello.fn.test:${port}`, domainPrefix: 'hello', http: { path: '/' } } },
  });
  const deep = await get(`${hosted.fnUrl}/fn/other?q=1`, { host: 'hello.fn.test' });
  t.match(JSON.parse(deep.body), { event: { rawPath: '/fn/other', rawQueryString: 'q=1' } }, "every path on its host is the function's own");
  t.equal((await get(`${hosted.fnUrl}/`, { host: 'nothing.fn.test' })).status, 404, 'a host naming no function');
  const byPath = await get(`${hosted.fnUrl}/fn/hello/p`);
  t.equal(byPath.status, 200, '/fn/<name> keeps working on the functions listener');
  t.match(JSON.parse(byPath.body), { event: { rawPath: '/p' } });
});
