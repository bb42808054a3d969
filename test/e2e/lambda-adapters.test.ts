/**
 * Existing Lambda apps run unchanged: an Express app wrapped by serverless-http, deployed as a zip
 * with its node_modules, answers through /fn/<name>/... what Express answers for that route.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { functionDirectory } from '../support/node-package.js';
import { startPlatform, type Platform } from '../support/platform.js';
import { zipDirectory } from '../support/zip.js';

const APP = `
const serverless = require('serverless-http');
const express = require('express');
const app = express();
app.get('/users/:id', (req, res) => res.set('x-app', 'express').json({ id: req.params.id, x: req.query.x, path: req.path }));
app.get('/cookie', (req, res) => res.cookie('a', '1').cookie('b', '2').send('cookies set'));
app.post('/echo', (req, res) => res.status(201).type('text/plain').send('got ' + req.get('content-type')));
app.use((req, res) => res.status(404).json({ missing: req.path }));
module.exports.handler = serverless(app);
`;

let platform: Platform;
let dir: string;
t.before(async () => {
  platform = await startPlatform();
  dir = await mkdtemp(join(tmpdir(), 'skiff-express-'));
});
t.teardown(async () => {
  await platform?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

t.test('Express behind serverless-http, deployed with its node_modules', async (t) => {
  await functionDirectory(dir, { 'app.js': APP }, ['express', 'serverless-http']);
  const zip = await zipDirectory(dir);
  const deployed = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name: 'express-app', runtime: 'nodejs20', handler: 'app.handler', memoryMb: 256, code: { zip: zip.toString('base64') } }),
  });
  t.equal(deployed.status, 201, 'deploy answers 201');

  const res = await fetch(`${platform.fnUrl}/fn/express-app/users/42?x=1`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-app'), 'express', "the app's own header comes through");
  t.match(res.headers.get('content-type'), /application\/json/);
  t.same(await res.json(), { id: '42', x: '1', path: '/users/42' });

  const cookies = await fetch(`${platform.fnUrl}/fn/express-app/cookie`);
  t.equal(await cookies.text(), 'cookies set');
  t.same(
    cookies.headers.getSetCookie().map((c) => c.split(';')[0]),
    ['a=1', 'b=2'],
    'each cookie is its own Set-Cookie',
  );

  const posted = await fetch(`${platform.fnUrl}/fn/express-app/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  t.equal(posted.status, 201);
  t.equal(await posted.text(), 'got application/json');

  const missing = await fetch(`${platform.fnUrl}/fn/express-app/nothing/here`);
  t.equal(missing.status, 404, "the app's own 404, not the platform's");
  t.same(await missing.json(), { missing: '/nothing/here' });
});
