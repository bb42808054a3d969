/**
 * The platform as `npm start` brings it up (infra/bringup/main.ts, supervised gateway, scheduler
 * and worker processes), started by the bench as a child: its state in a directory of the bench
 * run's, the bench's private Redis, PostgreSQL and registry (infra/bench/services.ts) named as
 * external servers, and free ports for the gateway, the functions listener and the worker's
 * metrics, so it meets no developer's `npm start` and no test. Its output goes to a log file; its
 * `skiff:` lines are shown as progress.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BenchServices } from '../infra/bench/services.js';
import { freePort } from '../infra/services/process.js';
import { waitUntil } from './harness.js';

const BRINGUP = join(dirname(fileURLToPath(import.meta.url)), '..', 'infra', 'bringup', 'main.js');

export interface Deployed {
  url: string;
  auth: { authorization: string };
  /** The worker's GET /metrics. */
  metricsUrl: string;
  workerId: string;
  stateDir: string;
  /** Where the bring-up's output (every component's log lines) is written. */
  logFile: string;
  /** SIGTERM, as Ctrl-C would; rejects unless it stopped cleanly (exit 0, nothing left). */
  stop(): Promise<void>;
}

let runs = 0;

export async function startDeployed(services: BenchServices, env: Record<string, string>, progress: (line: string) => void): Promise<Deployed> {
  const stateDir = await mkdtemp(join(services.root, 'deployed-'));
  // Containers' unprivileged, id-mapped users must reach their roots below it.
  await chmod(stateDir, 0o755);
  const workerId = `bench-d${process.pid}x${runs++}`;
  const runDir = `/run/skiff/${workerId}`;
  const [gatewayPort, functionsPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const logFile = join(stateDir, 'bringup.log');
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: services.redisUrl,
    DATABASE_URL: services.databaseUrl,
    REGISTRY_URL: services.registryUrl,
    SKIFF_STATE_DIR: stateDir,
    // The runtime images' root file systems, built when the services started.
    SKIFF_IMAGES_DIR: join(services.root, 'images'),
    SKIFF_WORKER_ID: workerId,
    SKIFF_RUN_DIR: runDir,
    SKIFF_GATEWAY_PORT: String(gatewayPort),
    SKIFF_FUNCTIONS_PORT: String(functionsPort),
    SKIFF_WORKER_METRICS_PORT: String(metricsPort),
    // Apart from the in-process platforms of the same run, which share the Redis.
    SKIFF_KEY_PREFIX: `bench-${process.pid}x${runs}`,
    SKIFF_LOG_LEVEL: 'warn',
    ...env,
  };
  const child: ChildProcess = spawn(process.execPath, [BRINGUP], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  let output = '';
  /** The last lines it printed, for the error when it does not come up (its log goes with the run's state). */
  const tail: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream as NodeJS.ReadableStream }).on('line', (line) => {
      log.write(`${line}\n`);
      tail.push(line.slice(0, 500));
      if (tail.length > 15) tail.shift();
      if (line.startsWith('skiff:')) {
        output += `${line}\n`;
        progress(`  ${line}`);
      } else if (line.startsWith('{') && line.includes('"component":"bring-up"')) {
        // Supervision's own lines: a component that exits and is restarted shows here.
        const { msg, process: name, code } = JSON.parse(line) as { msg?: string; process?: string; code?: number };
        progress(`  bring-up: ${name ?? ''} ${msg ?? ''}${code === undefined ? '' : ` (exit ${code})`}`);
      }
    });
  }
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const code = await exited;
    log.end();
    if (code !== 0) throw new Error(`the bring-up exited ${code} on SIGTERM (its log: ${logFile})`);
    if (!output.includes('stopped: no containers, mounts or processes left')) throw new Error(`the bring-up left something behind (its log: ${logFile})`);
    // runc's state directory, empty now: the worker leaves it behind.
    await rm(runDir, { recursive: true, force: true });
  };
  try {
    await waitUntil('the bring-up to be ready', () => output.includes('skiff: ready') || child.exitCode !== null, 180_000, 100);
    if (!output.includes('skiff: ready')) throw new Error(`the bring-up exited ${child.exitCode} before it was ready; it printed last:\n${tail.join('\n')}`);
    const key = (await readFile(join(stateDir, 'admin.key'), 'utf8')).trim();
    return {
      url: `http://127.0.0.1:${gatewayPort}`,
      auth: { authorization: `Bearer ${key}` },
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      workerId,
      stateDir,
      logFile,
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
