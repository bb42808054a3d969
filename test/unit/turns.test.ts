import t from 'tap';
import { Turns } from '../../worker/sandbox/turns.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('at most `limit` run at once; the others start in order as turns free up', async (t) => {
  const turns = new Turns(2);
  const started: number[] = [];
  const finish: Array<() => void> = [];
  const runs = [0, 1, 2, 3].map((i) =>
    turns.run(
      () =>
        new Promise<number>((resolve) => {
          started.push(i);
          finish[i] = () => resolve(i);
        }),
    ),
  );
  await tick();
  t.same(started, [0, 1], 'two start');
  t.same(turns.state, { held: 2, waiting: 2 });
  finish[1]?.();
  await tick();
  t.same(started, [0, 1, 2], 'the first waiting starts when one ends');
  finish[0]?.();
  finish[2]?.();
  await tick();
  finish[3]?.();
  t.same(await Promise.all(runs), [0, 1, 2, 3], 'each gets its own result');
  t.same(turns.state, { held: 0, waiting: 0 }, 'every turn is given back');
});

t.test('a failing holder gives its turn back', async (t) => {
  const turns = new Turns(1);
  await t.rejects(
    turns.run(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  t.equal(await turns.run(async () => 'next'), 'next');
  t.same(turns.state, { held: 0, waiting: 0 });
});

t.test('the limit is a positive integer', async (t) => {
  t.throws(() => new Turns(0), RangeError);
  t.throws(() => new Turns(1.5), RangeError);
});
