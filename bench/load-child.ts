/**
 * The deployed bench's caller, a process of its own (started by load.ts): the bench's process
 * deploys and watches, this one makes the calls, so no figure shares a process with the platform
 * or with the bench's own bookkeeping. Commands come as JSON lines on stdin, one answer per line
 * on stdout, in order:
 * - `sequential`: `count` calls one after another (after `warmup` unmeasured), each timed;
 * - `burst`: `count` calls at once, the whole and each timed;
 * - `hold`: start `count` holders, each calling again as soon as its call is answered, with
 *   `{ until: now + holdMs }` as the event (a handler that waits for it keeps its instance busy);
 *   answered at once. `release`: the holders stop calling; answered with every call they made.
 */
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { newAgent, post, type Reply } from './http.js';

export type LoadCommand =
  | { op: 'sequential'; url: string; count: number; warmup: number; body?: unknown }
  | { op: 'burst'; url: string; count: number; body?: unknown }
  | { op: 'hold'; url: string; count: number; holdMs: number }
  | { op: 'release' };

/** A call as the caller saw it; `body` only as far as the figures need it (an instance id, an error). */
export interface CallSeen {
  status: number;
  cold: boolean | undefined;
  ms: number;
  body: string;
}

export type LoadAnswer = { ok: true; calls: CallSeen[]; totalMs: number } | { ok: false; error: string };

const agent = newAgent(4096);
let holding = false;
let holders: Array<Promise<CallSeen[]>> = [];

async function holder(url: string, holdMs: number): Promise<CallSeen[]> {
  const calls: CallSeen[] = [];
  while (holding) calls.push(await call(url, { until: Date.now() + holdMs }));
  return calls;
}

function call(url: string, body: unknown): Promise<CallSeen> {
  return post(url, body ?? {}, {}, agent).then(
    (reply: Reply) => ({ status: reply.status, cold: reply.cold, ms: reply.ms, body: reply.body.slice(0, 300) }),
    (error: Error) => ({ status: 0, cold: undefined, ms: 0, body: error.message }),
  );
}

async function run(command: LoadCommand): Promise<LoadAnswer> {
  const started = performance.now();
  const done = (calls: CallSeen[]): LoadAnswer => ({ ok: true, calls, totalMs: performance.now() - started });
  switch (command.op) {
    case 'sequential': {
      const calls: CallSeen[] = [];
      for (let i = 0; i < command.warmup + command.count; i++) {
        const seen = await call(command.url, command.body);
        if (i >= command.warmup) calls.push(seen);
      }
      return done(calls);
    }
    case 'burst':
      return done(await Promise.all(Array.from({ length: command.count }, () => call(command.url, command.body))));
    case 'hold':
      holding = true;
      for (let i = 0; i < command.count; i++) holders.push(holder(command.url, command.holdMs));
      return done([]);
    case 'release': {
      holding = false;
      const calls = (await Promise.all(holders)).flat();
      holders = [];
      return done(calls);
    }
  }
}

// One command at a time, answered in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  queue = queue.then(async () => {
    const answer = await run(JSON.parse(line) as LoadCommand).catch((error: Error): LoadAnswer => ({ ok: false, error: error.message }));
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });
});
process.stdin.on('end', () => void queue.then(() => agent.destroy()));
