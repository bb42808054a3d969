/** Invocation records and log lines are kept for the retention period, then deleted. */
import t from 'tap';
import { createLogger } from '../../infra/log.js';
import { openDatabase } from '../../infra/db/database.js';
import { Retention } from '../../scheduler/retention.js';
import { TenantStore } from '../../infra/db/tenants.js';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

t.test('records and logs past retention go; newer ones stay', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const db = openDatabase(platform.config.databaseUrl, platform.config.databaseSchema, 1);
  t.teardown(() => db.end());
  const api = client(() => platform);
  await api.deploy({ name: 'kept' }, { 'index.js': 'exports.handler = async (e) => { console.log("call", e.n); return e.n; };' });
  const ids: string[] = [];
  for (const n of [1, 2]) ids.push((await api.invoke('kept', { n })).headers.get('x-skiff-invocation-id') ?? '');
  const count = async (sql: string, id: string): Promise<number> => Number((await db.query(sql, [id])).rows[0]?.n ?? 0);
  const records = (id: string): Promise<number> => count('SELECT count(*) AS n FROM invocations WHERE id = $1', id);
  const lines = (id: string): Promise<number> => count('SELECT count(*) AS n FROM function_logs WHERE invocation_id = $1', id);
  t.ok(await eventually(async () => (await records(ids[1] ?? '')) === 1 && (await lines(ids[1] ?? '')) === 1), 'both calls are recorded');
  // The first call is made to look ten days old.
  await db.query("UPDATE invocations SET created_at = now() - interval '10 days' WHERE id = $1", [ids[0]]);
  await db.query("UPDATE function_logs SET at = now() - interval '10 days' WHERE invocation_id = $1", [ids[0]]);

  const swept = await new Retention(db, 24 * 7, createLogger('test', 'warn')).sweep();
  t.same(swept, { invocations: 1, logs: 1, overBounds: { invocations: 0, logs: 0 } });
  t.equal(await records(ids[0] ?? ''), 0, 'the old record is gone');
  t.equal(await lines(ids[0] ?? ''), 0, 'its log line too');
  t.equal(await records(ids[1] ?? ''), 1, 'the recent one stays');
  t.equal(await lines(ids[1] ?? ''), 1);
});

t.test("a tenant's records and log lines past its bounds go, oldest first; counted", async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const db = openDatabase(platform.config.databaseUrl, platform.config.databaseSchema, 1);
  t.teardown(() => db.end());
  const api = client(() => platform);
  const tenants = new TenantStore(db, platform.config.tenantDefaults);
  await tenants.create('tiny', { maxInvocationRecords: 1, maxLogLines: 1 });
  await api.deploy({ name: 'chatty', tenant: 'tiny' }, { 'index.js': 'exports.handler = async (e) => { console.log("call", e.n); return e.n; };' });
  await api.deploy({ name: 'roomy' }, { 'index.js': 'exports.handler = async (e) => { console.log("call", e.n); return e.n; };' });
  const ids: string[] = [];
  const count = async (sql: string, value: string): Promise<number> => Number((await db.query(sql, [value])).rows[0]?.n ?? 0);
  const records = (fn: string): Promise<number> => count('SELECT count(*) AS n FROM invocations WHERE function_name = $1', fn);
  const lines = (fn: string): Promise<number> => count('SELECT count(*) AS n FROM function_logs WHERE function_name = $1', fn);
  // Each call's record is written before the next call, so "oldest" is well defined (records of
  // one batch share a created_at).
  for (const n of [1, 2, 3]) {
    ids.push((await api.invoke('chatty', { n })).headers.get('x-skiff-invocation-id') ?? '');
    t.ok(await eventually(async () => (await records('chatty')) === n), `call ${n} is recorded`);
  }
  for (const n of [1, 2]) await api.invoke('roomy', { n });
  t.ok(
    await eventually(async () => (await records('chatty')) === 3 && (await lines('chatty')) === 3 && (await lines('roomy')) === 2),
    'every call is recorded',
  );

  const pruned: Record<string, number> = {};
  const swept = await new Retention(db, 24 * 7, createLogger('test', 'warn'), {
    tenants: () => tenants.list(),
    pruned: (kind, rows) => (pruned[kind] = (pruned[kind] ?? 0) + rows),
  }).sweep();
  t.same(swept.overBounds, { invocations: 2, logs: 2 }, "two of each past tiny's bound of one");
  t.same(pruned, { invocations: 2, logs: 2 }, 'counted');
  t.same((await db.query('SELECT id FROM invocations WHERE function_name = $1', ['chatty'])).rows, [{ id: ids[2] }], 'the newest record stays');
  t.same((await db.query('SELECT text FROM function_logs WHERE function_name = $1', ['chatty'])).rows, [{ text: 'call 3' }], 'the newest line stays');
  t.equal(await records('roomy'), 2, "another tenant's records are untouched");
  t.equal(await lines('roomy'), 2);
});
