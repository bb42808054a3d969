import t from 'tap';
import { CrashBackoff } from '../../worker/instances/crash-backoff.js';

t.test('three crashes in a row refuse new containers, for twice as long each further crash, up to the cap', async (t) => {
  let now = 1000;
  const backoff = new CrashBackoff({ now: () => now, firstMs: 500, maxMs: 1500 });
  backoff.crashed('v1');
  backoff.crashed('v1');
  t.equal(backoff.refusedFor('v1'), 0, 'two crashes: still served');
  backoff.crashed('v1');
  t.equal(backoff.refusedFor('v1'), 500, 'the third: refused for 500 ms');
  t.equal(backoff.refusedFor('v2'), 0, 'another version is not affected');
  now += 500;
  t.equal(backoff.refusedFor('v1'), 0, 'over after the delay');
  backoff.crashed('v1');
  t.equal(backoff.refusedFor('v1'), 1000, 'crashing again: twice as long');
  now += 1000;
  backoff.crashed('v1');
  t.equal(backoff.refusedFor('v1'), 1500, 'capped');
  now += 1500;
  backoff.crashed('v1');
  t.equal(backoff.refusedFor('v1'), 1500, 'stays at the cap');
});

t.test('a call that ends well resets the streak', async (t) => {
  const backoff = new CrashBackoff({ now: () => 0 });
  backoff.crashed('v');
  backoff.crashed('v');
  backoff.succeeded('v');
  backoff.crashed('v');
  t.equal(backoff.refusedFor('v'), 0);
});
