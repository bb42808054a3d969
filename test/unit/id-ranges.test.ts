import t from 'tap';
import { IdRanges } from '../../worker/sandbox/id-ranges.js';

const RANGE = 65536;

t.test('ranges start at the base and are disjoint, 65536 ids each', async (t) => {
  const ranges = new IdRanges(1_000_000);
  const taken = Array.from({ length: 5 }, () => ranges.take());
  t.same(taken, [1_000_000, 1_065_536, 1_131_072, 1_196_608, 1_262_144]);
  const sorted = [...taken].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    t.ok((sorted[i] ?? 0) - (sorted[i - 1] ?? 0) >= RANGE, `range ${i} starts after range ${i - 1} ends`);
  }
  t.ok(
    taken.every((base) => base >= 1_000_000),
    'nothing below the base',
  );
});

t.test('two allocators with different bases are independent', async (t) => {
  const a = new IdRanges(100_000);
  const b = new IdRanges(10_000_000);
  t.equal(a.take(), 100_000);
  t.equal(b.take(), 10_000_000);
  t.equal(a.take(), 165_536);
});

t.test('a given-back range is reused before a new one', async (t) => {
  const ranges = new IdRanges(1_000_000);
  const first = ranges.take();
  const second = ranges.take();
  const third = ranges.take();
  ranges.give(second);
  t.equal(ranges.take(), second, 'the freed range comes back');
  t.equal(ranges.take(), third + RANGE, 'then a new one');
  ranges.give(first);
  ranges.give(third);
  const again = [ranges.take(), ranges.take()].sort((a, b) => a - b);
  t.same(again, [first, third], 'both freed ranges, each once');
  t.equal(ranges.take(), third + 2 * RANGE);
});

t.test('ranges in use are never handed out twice', async (t) => {
  const ranges = new IdRanges(0);
  const inUse = new Set<number>();
  let peak = 0;
  let highest = 0;
  // A deterministic churn of takes and gives.
  for (let step = 0; step < 200; step++) {
    if (step % 3 === 2 && inUse.size > 0) {
      const victim = [...inUse][step % inUse.size];
      if (victim !== undefined) {
        inUse.delete(victim);
        ranges.give(victim);
      }
    } else {
      const base = ranges.take();
      t.notOk(inUse.has(base), `step ${step}: ${base} is not in use`);
      t.equal(base % RANGE, 0, `step ${step}: ${base} is aligned`);
      inUse.add(base);
      peak = Math.max(peak, inUse.size);
      highest = Math.max(highest, base);
    }
  }
  // Reuse first means the highest range handed out is never beyond the most ever in use at once.
  t.ok(highest < peak * RANGE, `freed ranges were reused (peak ${peak} in use)`);
});
