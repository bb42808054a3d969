/** The gateway describes its API as OpenAPI 3 and serves a browsable UI. */
import t from 'tap';
import { startPlatform } from '../support/platform.js';

t.test('GET /openapi.json describes the routes; /docs serves the UI', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const res = await fetch(`${platform.url}/openapi.json`);
  t.equal(res.status, 200);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown }>> };
  t.match(doc.openapi, /^3\./);
  for (const path of ['/v1/functions', '/v1/functions/{name}', '/v1/functions/{name}/invoke', '/v1/functions/{name}/logs', '/v1/workers', '/v1/keys']) {
    t.ok(doc.paths[path], `${path} is described`);
  }
  t.ok(doc.paths['/v1/functions']?.post?.requestBody, 'the deploy body schema is part of it');
  const ui = await fetch(`${platform.url}/docs/`);
  t.equal(ui.status, 200);
  t.match(await ui.text(), /swagger/i);
});
