/** Invocation records and log lines are kept for the retention period, then deleted. */
import t from 'tap';
import { createLogger } from '../../infra/log.js';
import { openDatabase } from '../../infra/db/database.js';
import { Retention } from '../../scheduler/retention.js';
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
  t.same(swept, { invocations: 1, logs: 1 });
  t.equal(await records(ids[0] ?? ''), 0, 'the old record is gone');
  t.equal(await lines(ids[0] ?? ''), 0, 'its log line too');
  t.equal(await records(ids[1] ?? ''), 1, 'the recent one stays');
  t.equal(await lines(ids[1] ?? ''), 1);
});
