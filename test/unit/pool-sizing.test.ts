/**
 * The pool's sizing policy (worker/sandbox/pool-sizing.ts), pure, on a fake clock: the arrival
 * rate of new instances, the target it asks for between floor and max, and the memory bound.
 */
import t from 'tap';
import { ArrivalRate, demandTarget, poolTargets } from '../../worker/sandbox/pool-sizing.js';

const sizing = { floor: 2, max: 50, windowMs: 10_000 };

t.test('the arrival rate: arrivals per second, decaying with the window as its time constant', async (t) => {
  const rate = new ArrivalRate(10_000);
  t.equal(rate.perSecond(0), 0, 'nothing seen: 0');
  for (let i = 0; i < 20; i++) rate.record(1000);
  t.ok(Math.abs(rate.perSecond(1000) - 2) < 1e-9, '20 arrivals in a 10 s window: 2/s');
  t.ok(Math.abs(rate.perSecond(11_000) - 2 / Math.E) < 1e-9, 'one window later: 1/e of it');
  rate.record(11_000, 10);
  t.ok(Math.abs(rate.perSecond(11_000) - (2 / Math.E + 1)) < 1e-9, 'new arrivals add to what is left');
  t.equal(rate.perSecond(500), rate.perSecond(11_000), 'a clock that goes back decays nothing');
  t.throws(() => new ArrivalRate(0), RangeError);
});

t.test('the target: one window of demand, between the floor and the max', async (t) => {
  t.equal(demandTarget(0, sizing), 2, 'no demand: the floor');
  t.equal(demandTarget(0.1, sizing), 2, 'one arrival a window: still the floor');
  t.equal(demandTarget(1, sizing), 10, '1/s over 10 s: 10');
  t.equal(demandTarget(1.01, sizing), 11, 'rounded up');
  t.equal(demandTarget(100, sizing), 50, 'the max');
  t.equal(demandTarget(1 + 1e-9, sizing), 10, 'a hair over a whole sandbox is not one more');
});

t.test('a burst raises the target at once; idle, it decays back to the floor', async (t) => {
  const rate = new ArrivalRate(sizing.windowMs);
  rate.record(0, 30);
  t.equal(demandTarget(rate.perSecond(0), sizing), 30, 'a burst of 30: 30 made before the next one');
  t.equal(demandTarget(rate.perSecond(10_000), sizing), 12, 'one window idle: 30/e');
  t.equal(demandTarget(rate.perSecond(30_000), sizing), 2, 'three windows idle: the floor');
});

t.test('memory bounds the targets: what fits besides what is held, shared in proportion', async (t) => {
  const holdings = [
    { runtime: 'nodejs20', ratePerSecond: 3, held: 10 },
    { runtime: 'python3.11', ratePerSecond: 1, held: 0 },
  ];
  t.same(poolTargets(holdings, sizing, 10_000, 10), { nodejs20: 30, 'python3.11': 10 }, 'room for all: the demand');
  t.same(poolTargets(holdings, sizing, 100, 10), { nodejs20: 15, 'python3.11': 5 }, 'room for 20 in all: 3 to 1');
  t.same(poolTargets(holdings, sizing, 0, 10), { nodejs20: 7, 'python3.11': 2 }, 'no room: keep about what is held');
  t.same(poolTargets(holdings, sizing, -1000, 10), { nodejs20: 0, 'python3.11': 0 }, 'short of memory: give it all back');
  const idle = [{ runtime: 'nodejs20', ratePerSecond: 0, held: 0 }];
  t.same(poolTargets(idle, { ...sizing, floor: 100 }, 250, 10), { nodejs20: 25 }, 'the floor too is bounded by memory');
  t.same(poolTargets(idle, { floor: 0, max: 0, windowMs: 1000 }, 10_000, 10), { nodejs20: 0 }, 'a pool pinned to 0 stays empty');
});
