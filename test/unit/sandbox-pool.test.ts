/**
 * The sandbox pool on a fake factory (test/support/fake-sandbox.ts), against its contract in
 * worker/sandbox/sandbox.ts: it fills to its targets with a bounded number of creations at once,
 * only with memory to spare (the worker's and the host's); its targets follow the demand its takes
 * show and decay back to the floor on a fake clock; `take` never waits; a pooled sandbox that dies leaves it; failing creations stop the
 * filling without rejecting; shutdown destroys what it holds and what was being made.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { pino } from 'pino';
import type { PoolSizingOptions } from '../../worker/sandbox/pool-sizing.js';
import { ReadySandboxPool } from '../../worker/sandbox/sandbox-pool.js';
import { fakeImage, FakeSandboxFactory, turns, until } from '../support/fake-sandbox.js';

/** A logger whose lines the test reads. */
function capturingLog(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'error' }, sink), lines };
}

function setUp(
  options: { target?: number; sizing?: PoolSizingOptions; concurrency?: number; freeMb?: () => number; hostSpareMb?: () => number; runtimes?: string[] } = {},
) {
  const factory = new FakeSandboxFactory();
  const images = new Map((options.runtimes ?? ['nodejs20']).map((runtime) => [runtime, fakeImage(runtime)]));
  const { log, lines } = capturingLog();
  const clock = { now: 0 };
  const target = options.target ?? 2;
  const pool = new ReadySandboxPool(factory, images, {
    sizing: options.sizing ?? { floor: target, max: target, windowMs: 10_000 },
    concurrency: options.concurrency ?? 1,
    memoryMb: 128,
    footprintMb: 128,
    freeMb: options.freeMb ?? (() => 1024),
    ...(options.hostSpareMb ? { hostSpareMb: options.hostSpareMb } : {}),
    now: () => clock.now,
    log,
  });
  return { factory, pool, lines, clock };
}

t.test('refill fills every runtime to its target, one creation at a time with a concurrency of 1', async (t) => {
  const { factory, pool } = setUp({ target: 2, runtimes: ['nodejs20', 'python3.11'] });
  t.same(pool.sizes(), { nodejs20: 0, 'python3.11': 0 });
  factory.hold();
  const filled = pool.refill();
  for (let i = 1; i <= 4; i++) {
    await until(() => factory.waiting() === 1, `creation ${i}`);
    await turns(5);
    t.equal(factory.asked.length, i, `creation ${i} runs alone`);
    factory.release(1, i === 4);
  }
  await filled;
  t.same(pool.sizes(), { nodejs20: 2, 'python3.11': 2 });
  t.equal(factory.mostCreating, 1, 'never two creations at once');
  t.same(
    factory.asked.map((a) => [a.image.runtime, a.memoryMb]),
    [
      ['nodejs20', 128],
      ['python3.11', 128],
      ['nodejs20', 128],
      ['python3.11', 128],
    ],
    'the runtime furthest under its target first',
  );
  t.equal(pool.reservedMb(), 512, 'ready sandboxes hold their memory');
  await pool.refill();
  t.equal(factory.made.length, 4, 'a full pool makes nothing');
});

t.test('refill runs up to its concurrency of creations at once, never more', async (t) => {
  const { factory, pool } = setUp({ target: 7, concurrency: 3 });
  factory.hold();
  const filled = pool.refill();
  await until(() => factory.waiting() === 3, 'three creations');
  await turns(5);
  t.equal(factory.asked.length, 3, 'a fourth waits for one of them');
  t.equal(pool.reservedMb(), 3 * 128, 'sandboxes being made hold their memory too');
  factory.release();
  await filled;
  t.same(pool.sizes(), { nodejs20: 7 });
  t.equal(factory.mostCreating, 3);
});

t.test('calls to refill while one is under way join it', async (t) => {
  const { factory, pool } = setUp({ target: 1 });
  factory.hold();
  const first = pool.refill();
  const second = pool.refill();
  t.equal(first, second, 'the same filling');
  await until(() => factory.waiting() === 1);
  factory.release();
  await first;
  t.equal(factory.made.length, 1);
});

t.test('take hands over a ready sandbox without waiting, forgets it, and starts a refill', async (t) => {
  const { factory, pool } = setUp({ target: 1 });
  t.equal(pool.take('nodejs20'), undefined, 'nothing ready: undefined at once');
  await pool.refill();
  const sandbox = pool.take('nodejs20');
  t.equal(sandbox, factory.made[0]);
  t.equal(sandbox?.state, 'ready');
  t.equal(pool.take('python3.11'), undefined, 'a runtime the pool has no image of');
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'refilled');
  t.not(pool.take('nodejs20'), sandbox, 'a sandbox is handed out once');
  await pool.shutdown();
  t.equal(sandbox?.state, 'ready', 'a sandbox taken is not the pool’s to destroy');
});

t.test('a pooled sandbox that dies leaves the pool at once', async (t) => {
  const { factory, pool } = setUp({ target: 2 });
  await pool.refill();
  factory.hold();
  factory.made[0]?.die('runtime exited');
  t.same(pool.sizes(), { nodejs20: 1 });
  t.equal(pool.reservedMb(), 128);
  t.equal(pool.take('nodejs20'), factory.made[1], 'the live one is handed out');
  factory.release();
});

t.test('the pool fills only while the worker has memory to spare', async (t) => {
  let free = 200;
  const { factory, pool } = setUp({ target: 3, freeMb: () => free });
  // freeMb is what the worker has left: the instance set counts the pool's own reservation in it.
  factory.onCreation(() => (free -= 128));
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'one fits in 200 MiB, the second does not');
  free = 1024;
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 3 });
});

t.test('the pool grows with the demand its takes show, and shrinks back to the floor when idle', async (t) => {
  const { factory, pool, clock } = setUp({ sizing: { floor: 1, max: 6, windowMs: 10_000 } });
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'no demand: the floor');
  // A burst of 4 new instances: one finds a ready sandbox, three are made for their calls.
  for (let i = 0; i < 4; i++) pool.take('nodejs20');
  t.same(pool.targets(), { nodejs20: 4 }, 'one window of demand: 4 arrivals');
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 4 }, 'made before the next burst');
  for (let i = 0; i < 10; i++) pool.take('nodejs20');
  t.same(pool.targets(), { nodejs20: 6 }, 'never past the max');
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 6 });
  const made = factory.made.length;

  clock.now += 10_000;
  t.same(pool.targets(), { nodejs20: 6 }, 'one window later, 14 arrivals count as 5.2: still 6');
  clock.now += 10_000;
  t.same(pool.targets(), { nodejs20: 2 }, 'two windows later: 1.9');
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 2 }, 'the pool gave back what was over its target');
  t.equal(factory.made.length, made, 'and made nothing');
  t.same(factory.made.filter((s) => s.deathReason === 'pool over its target').length, 4, 'the ones over the target were destroyed');
  clock.now += 60_000;
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 1 }, 'idle: back to the floor');
  t.same(pool.targets(), { nodejs20: 1 });
});

t.test('the pool shrinks a few at a time', async (t) => {
  const { pool, clock } = setUp({ sizing: { floor: 0, max: 20, windowMs: 1000 } });
  for (let i = 0; i < 10; i++) pool.take('nodejs20');
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 10 });
  clock.now += 3_600_000;
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 6 }, 'four per adjustment');
  await pool.adjust();
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 0 });
});

t.test('the host’s spare memory bounds the pool, the floor too, and a shortage shrinks it', async (t) => {
  let hostSpare = 300;
  const { factory, pool } = setUp({ sizing: { floor: 5, max: 10, windowMs: 10_000 }, freeMb: () => 4096, hostSpareMb: () => hostSpare });
  // The fake worker's free memory does not move; the host's goes down as sandboxes are made.
  factory.onCreation(() => (hostSpare -= 128));
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 2 }, 'two fit in 300 MiB, the floor of 5 does not');
  t.same(pool.targets(), { nodejs20: 2 }, 'the target is what fits');
  hostSpare = 4096;
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 5 }, 'memory back: the floor');
  hostSpare = -2 * 128;
  await pool.adjust();
  t.same(pool.sizes(), { nodejs20: 3 }, 'the host short by two sandboxes: two given back');
});

t.test('creations that keep failing stop the filling; refill resolves, and the next take tries again', async (t) => {
  const { factory, pool, lines } = setUp({ target: 1 });
  for (let i = 0; i < 3; i++) factory.failNext();
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 0 });
  t.equal(factory.asked.length, 3, 'three tries, then it backs off');
  t.equal(lines.length, 3, 'each failure is logged');
  t.match(lines[2], { msg: 'could not pre-create a sandbox', runtime: 'nodejs20', failures: 3 });
  pool.take('nodejs20');
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'a later refill succeeds');
});

t.test('shutdown destroys the pooled sandboxes and one still being made, and makes nothing more', async (t) => {
  const { factory, pool } = setUp({ target: 2 });
  await pool.refill();
  factory.hold();
  pool.take('nodejs20'); // starts a refill, whose creation waits
  const refilling = pool.refill();
  await until(() => factory.waiting() === 1);
  const stopping = pool.shutdown();
  factory.release();
  await stopping;
  await refilling;
  t.same(pool.sizes(), { nodejs20: 0 });
  t.equal(pool.reservedMb(), 0);
  t.equal(factory.made[1]?.deathReason, 'worker stopping', 'the pooled one');
  t.equal(factory.made[2]?.deathReason, 'worker stopping', 'the one made during shutdown');
  t.equal(factory.made[0]?.state, 'ready', 'the one taken before is the taker’s');
  pool.take('nodejs20');
  await pool.refill();
  await turns(5);
  t.equal(factory.made.length, 3, 'nothing is made after shutdown');
});
