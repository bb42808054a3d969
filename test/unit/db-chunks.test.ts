/**
 * Batches of any size reach PostgreSQL: a multi-row INSERT may carry at most 65535 parameters, so
 * log lines and invocation records are written in chunks under it. Against the real PostgreSQL
 * the test runner starts (DATABASE_URL), in a schema of this test's own.
 */
import t from 'tap';
import { migrate, openDatabase, type Database } from '../../infra/db/database.js';
import { chunked, MAX_PARAMETERS, rowsPerStatement } from '../../infra/db/chunks.js';
import { InvocationRecords } from '../../infra/db/invocation-records.js';
import { LogStore, type LogLine } from '../../infra/db/log-store.js';

const url = process.env.DATABASE_URL;
const schema = `test_chunks_${process.pid}`;
let db: Database;

t.before(async () => {
  if (!url) return;
  db = openDatabase(url, schema, 2);
  await migrate(db, schema);
});
t.teardown(async () => {
  if (!url) return;
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

t.test('chunked: runs bounded by count and by size, in order', async (t) => {
  t.same(chunked([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  t.same(
    chunked([5, 5, 5, 20, 1], 10, 10, (n) => n),
    [[5, 5], [5], [20], [1]],
    'an item over the size goes alone',
  );
  t.same(chunked([], 3), []);
  t.ok(rowsPerStatement(7) * 7 <= MAX_PARAMETERS && (rowsPerStatement(7) + 1) * 7 > MAX_PARAMETERS);
});

t.test('a batch of 70,000 log lines is written whole', { skip: url ? false : 'DATABASE_URL is not set (run with the test runner)' }, async (t) => {
  const errors: unknown[] = [];
  const store = new LogStore(db, undefined, (error) => errors.push(error), 60_000);
  const at = Date.now();
  for (let i = 0; i < 70_000; i++) {
    const line: LogLine = {
      functionName: 'chatty',
      functionVersion: 1,
      invocationId: `inv-${i % 7}`,
      sandboxId: 's1',
      stream: 'stdout',
      text: `line ${i}`,
      at,
    };
    store.append(line);
  }
  await store.flush();
  t.same(errors, [], 'no error (70,000 × 7 parameters is 490,000 in one batch)');
  const { rows } = await db.query("SELECT count(*)::int AS n, count(DISTINCT text)::int AS texts FROM function_logs WHERE function_name = 'chatty'");
  t.same(rows[0], { n: 70_000, texts: 70_000 }, 'every line is stored once');
});

t.test('a batch of 7,000 invocation records is written whole', { skip: url ? false : 'DATABASE_URL is not set' }, async (t) => {
  const errors: unknown[] = [];
  const records = new InvocationRecords(db, (error) => errors.push(error), 60_000);
  for (let i = 0; i < 7_000; i++) {
    records.record({ id: `rec-${i}`, functionName: 'busy', functionVersion: 1, async: false, status: 'succeeded', result: { i }, durationMs: 1 });
  }
  await records.flush();
  t.same(errors, [], 'no error (7,000 × 11 parameters is 77,000)');
  const { rows } = await db.query("SELECT count(*)::int AS n FROM invocations WHERE function_name = 'busy'");
  t.same(rows[0], { n: 7_000 });
  t.match(await records.get('rec-6999'), { status: 'succeeded', result: { i: 6999 } });
});
