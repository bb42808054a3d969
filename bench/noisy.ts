/**
 * Noisy neighbour: a no-op function's warm latency alone, then again while hostile functions on
 * the same worker are kept busy by asynchronous calls: first a fork bomb and a memory bomb (issue
 * 4's case), then those and a CPU burner too. Isolation holds when the victim's p99 at most
 * doubles and it never fails.
 */
import { performance } from 'node:perf_hooks';
import { deploy, get, invoke, invokeAsync, noop } from './http.js';
import { sleep, type Platform } from './harness.js';
import { percentiles, round, type Percentiles } from './stats.js';

/** Spawns `node` children until the pids limit answers EAGAIN, keeps them a moment, then exits. */
const FORK_BOMB = `const { spawn } = require('node:child_process');
exports.handler = async () => {
  const children = [];
  let failed;
  for (let i = 0; i < 1000 && !failed; i++) {
    try {
      const child = spawn('/usr/bin/node', ['-e', 'setTimeout(() => {}, 1500)'], { stdio: 'ignore' });
      child.on('error', (error) => { failed ??= error.code ?? String(error); });
      children.push(child);
    } catch (error) {
      failed = error.code ?? String(error);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const child of children) child.kill('SIGKILL');
  return { spawned: children.length, failed };
};
`;
/** Allocates 8 MiB buffers until the memory limit kills it. */
const MEMORY_BOMB = `exports.handler = async () => {
  const held = [];
  for (;;) held.push(Buffer.alloc(8 << 20, 1));
};
`;
/** Spins a CPU for 2 s. */
const CPU_BURNER = `exports.handler = async () => {
  const end = Date.now() + 2000;
  let n = 0;
  while (Date.now() < end) n++;
  return { n };
};
`;

export interface NoisyNeighbour {
  aloneMs: Percentiles;
  /** Beside the fork bomb and the memory bomb. */
  bombsMs: Percentiles;
  bombsP99Ratio: number;
  /** Beside the two bombs and the CPU burner. */
  underAttackMs: Percentiles;
  p99Ratio: number;
  /** The victim's answers other than 200 (or no answer), alone and under attack together. */
  errors: number;
  /** Asynchronous calls the attackers made, by function. */
  attackCalls: Record<string, number>;
}

async function victimCalls(platform: Platform, name: string, count: number): Promise<{ samples: number[]; errors: number }> {
  const samples: number[] = [];
  let errors = 0;
  for (let i = 0; i < count; i++) {
    const reply = await invoke(platform.url, name).catch(() => undefined);
    if (!reply || reply.status !== 200) errors++;
    else samples.push(reply.ms);
  }
  return { samples, errors };
}

/**
 * Keeps `inFlight` asynchronous calls of `name` going until `stop()` says so: each loop submits a
 * call and polls its record until it ends (or 15 s pass), then submits the next.
 */
function attack(platform: Platform, name: string, inFlight: number, stopped: () => boolean, counts: Record<string, number>): Promise<void> {
  const loop = async (): Promise<void> => {
    while (!stopped()) {
      const reply = await invokeAsync(platform.url, name).catch(() => undefined);
      counts[name] = (counts[name] ?? 0) + 1;
      const id = reply?.status === 202 ? (JSON.parse(reply.body) as { id?: string }).id : undefined;
      if (!id) {
        await sleep(100);
        continue;
      }
      const giveUp = performance.now() + 15_000;
      while (!stopped() && performance.now() < giveUp) {
        await sleep(100);
        const record = await get(`${platform.url}/v1/invocations/${id}`, platform.auth).catch(() => undefined);
        const status = record?.status === 200 ? (JSON.parse(record.body) as { status?: string }).status : undefined;
        if (status === 'succeeded' || status === 'failed') break;
      }
    }
  };
  return Promise.all(Array.from({ length: inFlight }, loop)).then(() => undefined);
}

export async function noisyNeighbour(platform: Platform, calls: number, attackersInFlight: number): Promise<NoisyNeighbour> {
  await deploy(platform, { name: 'victim', source: noop('victim') });
  await victimCalls(platform, 'victim', 100); // warm: the cold start and JIT, unmeasured
  const alone = await victimCalls(platform, 'victim', calls);

  const bombs = [
    { name: 'fork-bomb', source: FORK_BOMB },
    { name: 'memory-bomb', source: MEMORY_BOMB },
  ];
  const burner = { name: 'cpu-burner', source: CPU_BURNER };
  for (const a of [...bombs, burner]) await deploy(platform, { ...a, memoryMb: 128, timeoutMs: 10_000 });
  const attackCalls: Record<string, number> = {};
  const underAttack = async (attackers: Array<{ name: string }>): Promise<{ samples: number[]; errors: number }> => {
    let stop = false;
    const attacking = Promise.all(attackers.map((a) => attack(platform, a.name, attackersInFlight, () => stop, attackCalls)));
    try {
      await sleep(3000); // let every attacker be running, and the memory bomb be killed a few times
      return await victimCalls(platform, 'victim', calls);
    } finally {
      stop = true;
      await attacking;
    }
  };
  const withBombs = await underAttack(bombs);
  const withAll = await underAttack([...bombs, burner]);
  if (alone.samples.length === 0 || withBombs.samples.length === 0 || withAll.samples.length === 0) {
    throw new Error(`the victim never answered 200 (${alone.errors} + ${withBombs.errors} + ${withAll.errors} errors)`);
  }
  const aloneMs = percentiles(alone.samples);
  const bombsMs = percentiles(withBombs.samples);
  const underAttackMs = percentiles(withAll.samples);
  return {
    aloneMs,
    bombsMs,
    bombsP99Ratio: round(bombsMs.p99 / aloneMs.p99, 2),
    underAttackMs,
    p99Ratio: round(underAttackMs.p99 / aloneMs.p99, 2),
    errors: alone.errors + withBombs.errors + withAll.errors,
    attackCalls,
  };
}
