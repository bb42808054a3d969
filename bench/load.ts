/**
 * The deployed bench's load generators, each a process of its own: autocannon (its CLI, for
 * rates at many connections) and load-child.ts (sub-millisecond timing of sequential calls, a
 * burst, calls held open). Neither runs in the bench's process nor in the platform's.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CallSeen, LoadAnswer, LoadCommand } from './load-child.js';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const AUTOCANNON = join(dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js');

export type { CallSeen };

export interface Rate {
  /** 2xx answers per second over the run. */
  perSec: number;
  ok: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  seconds: number;
  /** autocannon's latencies (whole milliseconds). */
  latencyMs: { p50: number; p99: number };
}

export interface RateOptions {
  url: string;
  connections: number;
  seconds: number;
  method?: 'GET' | 'POST';
  body?: string;
}

/** autocannon's CLI in a child process, its JSON result read back. */
export async function autocannon(o: RateOptions): Promise<Rate> {
  const args = [AUTOCANNON, '--json', '--no-progress', '-c', String(o.connections), '-d', String(o.seconds), '-m', o.method ?? 'GET'];
  if (o.body !== undefined) args.push('-H', 'content-type=application/json', '-b', o.body);
  const { stdout } = await run(process.execPath, [...args, o.url], { maxBuffer: 16 * 1024 * 1024 });
  const r = JSON.parse(stdout) as {
    '2xx': number;
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
    latency: { p50: number; p99: number };
  };
  return {
    perSec: r['2xx'] / r.duration,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    seconds: r.duration,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
  };
}

/** load-child.ts, started once and kept: commands in, answers out, one at a time. */
export class Caller {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<{ resolve: (a: LoadAnswer) => void; reject: (e: Error) => void }> = [];

  constructor() {
    this.child = spawn(process.execPath, [join(HERE, 'load-child.js')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`caller: ${chunk.toString()}`));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.resolve(JSON.parse(line) as LoadAnswer));
    this.child.once('exit', (code, signal) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`the caller process exited (${code ?? signal})`));
    });
  }

  async send(command: LoadCommand): Promise<{ calls: CallSeen[]; totalMs: number }> {
    const answer = await new Promise<LoadAnswer>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${JSON.stringify(command)}\n`);
    });
    if (!answer.ok) throw new Error(`the caller failed: ${answer.error}`);
    return answer;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Counts of each answer's status ('0' for no answer). */
export function statusesOf(calls: readonly CallSeen[]): Record<string, number> {
  const statuses: Record<string, number> = {};
  for (const c of calls) statuses[String(c.status)] = (statuses[String(c.status)] ?? 0) + 1;
  return statuses;
}
