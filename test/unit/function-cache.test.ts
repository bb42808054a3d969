/** The gateway's cache of current versions: remembered for a while, bounded however many names are asked for. */
import t from 'tap';
import { FunctionCache } from '../../gateway/invocations/function-cache.js';
import type { FunctionInfo } from '../../infra/db/function-store.js';

t.test('missing names are remembered, within a bound', async (t) => {
  const asked: string[] = [];
  const cache = new FunctionCache({ get: async (name: string): Promise<FunctionInfo | undefined> => (asked.push(name), undefined) }, 100, 5000);
  t.equal(await cache.get('nope'), undefined);
  t.equal(await cache.get('nope'), undefined);
  t.same(asked, ['nope'], 'the second look-up of a missing name costs no query');
  for (let i = 0; i < 10_000; i++) await cache.get(`flood-${i}`);
  t.equal(cache.size, 100, 'ten thousand names asked for, a hundred remembered');
  await cache.get('flood-9999');
  t.equal(asked.length, 10_001, 'the newest are the ones kept');
  await cache.get('nope');
  t.equal(asked.length, 10_002, 'the oldest went first');
});
