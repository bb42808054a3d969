import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Supervised, type SupervisedEvents, type SupervisedOptions } from '../../infra/bringup/supervisor.js';
import { processAlive, startProcess, type OwnedProcess } from '../../infra/services/process.js';

/** Waits (bounded) for the next `event` whose payload satisfies `until`. */
async function next<E extends keyof SupervisedEvents>(
  child: Supervised,
  event: E,
  until: (payload: SupervisedEvents[E][0]) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<SupervisedEvents[E][0]> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (;;) {
    const [payload] = (await once(child as never, event, { signal })) as [SupervisedEvents[E][0]];
    if (until(payload)) return payload;
  }
}

/** A node child running `script`; the start resolves once it printed "ready" (its handlers are set). */
function nodeChild(script: string): () => Promise<OwnedProcess> {
  return async () => {
    const proc = startProcess(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('ready')) resolve();
      });
      void proc.exited.then((code) => reject(new Error(`exited ${code} before it was ready`)), reject);
    });
    return proc;
  };
}

const STAYS_UP = `console.log('ready'); setInterval(() => {}, 1000);`;

function supervised(t: Test, options: Partial<SupervisedOptions> & Pick<SupervisedOptions, 'start'>): Supervised {
  const child = new Supervised({ name: 'test', stopGraceMs: 5000, ...options });
  t.teardown(() => child.stop());
  return child;
}

t.test('a child that exits is started again: a new pid', async (t) => {
  const child = supervised(t, { start: nodeChild(STAYS_UP), backoff: { firstMs: 50 } });
  const first = next(child, 'started');
  await child.start();
  const { pid, run } = await first;
  t.equal(run, 1);
  t.ok(pid && child.pid === pid, 'the running pid is known');
  const exited = next(child, 'exited');
  const restarted = next(child, 'started');
  process.kill(pid!, 'SIGKILL');
  const exit = await exited;
  t.equal(exit.signal, 'SIGKILL', 'the exit names the signal');
  t.equal(exit.restartInMs, 50, 'a restart follows after the first delay');
  const again = await restarted;
  t.equal(again.run, 2);
  t.not(again.pid, pid, 'another process');
  t.ok(processAlive(again.pid!), 'and it runs');
});

t.test('the delay doubles while the child keeps dying, up to the cap, and resets after a run that stayed up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-supervisor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mode = join(dir, 'mode');
  await writeFile(mode, 'die');
  // Dies soon after it started while the file says "die"; stays up once it says anything else.
  const script = `const fs = require('node:fs'); console.log('ready'); if (fs.readFileSync(${JSON.stringify(mode)}, 'utf8') === 'die') setTimeout(() => process.exit(3), 20); setInterval(() => {}, 1000);`;
  // A dying run is up about 20 ms: stableMs is a hundred times that, so a loaded machine does not
  // make one of them count as stable.
  const child = supervised(t, { start: nodeChild(script), backoff: { firstMs: 20, maxMs: 160, stableMs: 2000 } });
  const delays: number[] = [];
  child.on('exited', ({ restartInMs }) => delays.push(restartInMs ?? -1));
  child.on('startFailed', ({ restartInMs }) => delays.push(restartInMs));
  await child.start();
  await next(child, 'exited', () => delays.length >= 6);
  t.same(delays.slice(0, 6), [20, 40, 80, 160, 160, 160], 'doubling, then capped');

  await writeFile(mode, 'stay');
  const { pid } = await next(child, 'started');
  // Up for longer than stableMs, by the supervisor's own measure (checked below), then killed.
  await sleep(2300);
  const exited = next(child, 'exited');
  process.kill(pid!, 'SIGKILL');
  const exit = await exited;
  t.ok(exit.upMs >= 2000, `it stayed up ${exit.upMs} ms`);
  t.equal(exit.restartInMs, 20, 'the delay is back to the first');
  await next(child, 'started');
});

t.test('stop ends the child and no restart follows', async (t) => {
  const child = supervised(t, { start: nodeChild(STAYS_UP), backoff: { firstMs: 20 } });
  let starts = 0;
  child.on('started', () => starts++);
  await child.start();
  const pid = child.pid!;
  const exited = next(child, 'exited');
  await child.stop();
  const exit = await exited;
  t.equal(exit.restartInMs, undefined, 'no restart announced');
  t.equal(exit.signal, 'SIGTERM', 'stopped by SIGTERM');
  t.notOk(processAlive(pid), 'the process is gone');
  t.equal(child.pid, undefined);
  await sleep(200); // ten times the restart delay
  t.equal(starts, 1, 'not started again');
  await child.stop(); // stopping twice is fine
});

t.test('stop during the backoff drops the restart', async (t) => {
  const child = supervised(t, { start: nodeChild(STAYS_UP), backoff: { firstMs: 300 } });
  let starts = 0;
  child.on('started', () => starts++);
  await child.start();
  const exited = next(child, 'exited');
  process.kill(child.pid!, 'SIGKILL');
  t.equal((await exited).restartInMs, 300);
  await child.stop();
  await sleep(600);
  t.equal(starts, 1, 'the restart never came');
});

t.test('a child that ignores SIGTERM is killed after the bound', async (t) => {
  const child = supervised(t, {
    start: nodeChild(`process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);`),
    stopGraceMs: 300,
  });
  await child.start();
  const pid = child.pid!;
  const exited = next(child, 'exited');
  await child.stop();
  const exit = await exited;
  t.equal(exit.signal, 'SIGKILL', 'SIGKILL after the grace');
  t.notOk(processAlive(pid));
});

t.test('a final exit is not restarted', async (t) => {
  const child = supervised(t, {
    start: nodeChild(`console.log('ready'); setTimeout(() => process.exit(0), 50);`),
    backoff: { firstMs: 20 },
    isFinal: ({ code }) => code === 0,
  });
  let starts = 0;
  child.on('started', () => starts++);
  await child.start();
  const exit = await next(child, 'exited');
  t.equal(exit.code, 0);
  t.ok(exit.final, 'final');
  t.equal(exit.restartInMs, undefined);
  await sleep(200);
  t.equal(starts, 1);
});

t.test('a first start that fails rejects; a restart that fails is retried', async (t) => {
  const failing = supervised(t, { start: async () => Promise.reject(new Error('no')) });
  await t.rejects(failing.start(), /no/, 'the first start is the caller’s to handle');

  let attempts = 0;
  const start = nodeChild(STAYS_UP);
  const child = supervised(t, {
    backoff: { firstMs: 20 },
    start: async () => {
      attempts++;
      if (attempts === 2 || attempts === 3) throw new Error(`attempt ${attempts} failed`);
      return start();
    },
  });
  const failures: number[] = [];
  child.on('startFailed', ({ restartInMs }) => failures.push(restartInMs));
  await child.start();
  process.kill(child.pid!, 'SIGKILL');
  const { run } = await next(child, 'started', ({ run: n }) => n === 2);
  t.equal(run, 2);
  t.equal(attempts, 4, 'two failed restarts, then one that worked');
  t.same(failures, [40, 80], 'failed starts count in the backoff');
});

t.test('stop aborts a start in progress', async (t) => {
  let aborted = false;
  const child = supervised(t, {
    backoff: { firstMs: 20 },
    start: (() => {
      let n = 0;
      const first = nodeChild(STAYS_UP);
      return async (signal: AbortSignal) => {
        if (++n === 1) return first();
        // A start that waits until aborted, like a server that never answers.
        await once(signal, 'abort');
        aborted = true;
        throw new Error('aborted');
      };
    })(),
  });
  await child.start();
  let restartStarted = false;
  child.on('started', () => (restartStarted = true));
  process.kill(child.pid!, 'SIGKILL');
  await next(child, 'exited');
  await sleep(100); // the restart is now waiting
  await child.stop();
  t.ok(aborted, 'the waiting start was aborted');
  t.notOk(restartStarted);
});
