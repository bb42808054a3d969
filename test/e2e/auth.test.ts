/**
 * API keys: managing the platform needs one; calling a function does not, unless it was deployed
 * with "auth": "key"; keys are stored hashed and can be made and deleted.
 */
import t from 'tap';
import { client } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(() => platform?.stop());
const api = client(() => platform);

t.test('management needs a valid key; calls by URL do not', async (t) => {
  for (const [method, path] of [
    ['GET', '/v1/functions'],
    ['POST', '/v1/functions'],
    ['DELETE', '/v1/functions/x'],
    ['GET', '/v1/keys'],
    ['GET', '/v1/functions/x/logs'],
  ]) {
    const none = await fetch(`${platform.url}${path}`, { method });
    t.equal(none.status, 401, `${method} ${path} without a key: 401`);
    t.match(await none.json(), { error: { code: 'Unauthorized' } });
    const bad = await fetch(`${platform.url}${path}`, { method, headers: { authorization: `Bearer ${platform.key.slice(0, -2)}xx` } });
    t.equal(bad.status, 401, `${method} ${path} with a wrong key: 401`);
  }
  t.equal((await api.deploy({ name: 'open' }, { 'index.js': 'exports.handler = async () => "open";' })).status, 201);
  t.equal((await fetch(`${platform.fnUrl}/fn/open`)).status, 200, 'a public function answers without a key');
  t.equal((await api.invoke('open', {})).status, 200);
  t.equal((await fetch(`${platform.url}/healthz`)).status, 200);
});

t.test('a function deployed with auth "key" needs a key to be called', async (t) => {
  t.equal((await api.deploy({ name: 'private', auth: 'key' }, { 'index.js': 'exports.handler = async () => "secret";' })).status, 201);
  t.equal((await fetch(`${platform.fnUrl}/fn/private`)).status, 401);
  t.equal((await api.invoke('private', {})).status, 401);
  const ok = await api.invoke('private', {}, platform.auth);
  t.equal(ok.status, 200);
  t.equal(await ok.json(), 'secret');
});

t.test('keys are made, listed without their secret, and deleted', async (t) => {
  const made = await fetch(`${platform.url}/v1/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name: 'ci', role: 'owner' }),
  });
  t.equal(made.status, 201);
  const { id, key } = (await made.json()) as { id: string; key: string };
  t.match(key, /^sk_/);
  const headers = { authorization: `Bearer ${key}` };
  t.equal((await fetch(`${platform.url}/v1/functions`, { headers })).status, 200, 'the new key works');
  const listed = await (await fetch(`${platform.url}/v1/keys`, { headers })).text();
  t.match(listed, id);
  // The secret is everything after `sk_<id>_` (it may itself contain '_').
  const secret = key.slice(`sk_${id}_`.length);
  t.equal(secret.length, 43, 'a 32-byte secret');
  t.notOk(listed.includes(secret), 'the secret is never shown again');
  t.equal((await fetch(`${platform.url}/v1/keys/${id}`, { method: 'DELETE', headers: platform.auth })).status, 200);
  t.equal((await fetch(`${platform.url}/v1/functions`, { headers })).status, 401, 'a deleted key stops working');
});
