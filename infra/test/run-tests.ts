/**
 * `npm test`, after install and build: starts a private Redis, PostgreSQL and image registry on
 * free loopback ports, publishes the runtime base images to the registry, runs every test file
 * with tap against them (REDIS_URL, DATABASE_URL, REGISTRY_URL), stops them, and fails if the run
 * left a container, a mount or a cgroup behind.
 */
import { chmod, mkdtemp, rm, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startScratchServices } from '../services/scratch-services.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';

const root = await mkdtemp(join(tmpdir(), 'skiff-test-'));
/** Marks this run's workers (w-<run>...), so the leak check sees only what this run made. */
const run = `r${root
  .slice(-4)
  .toLowerCase()
  .replace(/[^a-z0-9]/g, 'x')}`;
// PostgreSQL runs as the postgres user and must reach its directory below this one.
await chmod(root, 0o755);
const files = process.argv.slice(2);
console.log(`skiff tests: state in ${root}`);
const started = performance.now();
// Fetched Node.js releases outlive the run (SKIFF_NODE_DIR, default <state>/node): fetched once per machine.
const { nodeDir } = loadConfig();
const services = await startScratchServices(root, nodeDir, createLogger('test-runner', 'warn'), (message) => console.log(`skiff tests: ${message}`));
console.log(`skiff tests: redis ${services.redisUrl}, postgres ${services.databaseUrl}, registry ${services.registryUrl}`);
console.log(
  `skiff tests: runtime images ${services.published.map((p) => p.runtime).join(', ')} published (${Math.round(performance.now() - started)} ms for all services)`,
);
for (const { runtime, reason } of services.unavailable) console.log(`skiff tests: no ${runtime} image (its tests fail): ${reason}`);

let code = 1;
try {
  code = await runTap(files.length > 0 ? files : await testFiles('dist/test'), {
    ...process.env,
    REDIS_URL: services.redisUrl,
    DATABASE_URL: services.databaseUrl,
    REGISTRY_URL: services.registryUrl,
    SKIFF_TEST_STATE: root,
    SKIFF_TEST_RUN: run,
    SKIFF_NODE_DIR: nodeDir,
  });
} finally {
  await services.stop();
}
const leaks = await leftovers(root);
if (leaks.length > 0) {
  console.error(`skiff tests: the run left things behind:\n  ${leaks.join('\n  ')}`);
  code = code || 1;
} else {
  await rm(root, { recursive: true, force: true });
  console.log('skiff tests: no container, mount or cgroup left behind');
}
process.exit(code);

/** Runs tap, passing its output through, and ends with a plain `N passed, N failed` line. */
function runTap(testFiles: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const tap = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...testFiles], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    let tail = '';
    tap.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
    });
    tap.on('error', reject);
    tap.on('close', (status) => {
      // tap's own summary line: "# { total: 684, pass: 680, fail: 2, skip: 2 }"
      const summary = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail);
      if (summary) {
        const [, , pass = '0', fail = '0', skip] = summary;
        console.log(`tests: ${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ''}`);
      }
      resolve(status ?? 1);
    });
  });
}

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.test.js')) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

async function leftovers(stateRoot: string): Promise<string[]> {
  const found: string[] = [];
  for (const point of await mountPointsUnder([stateRoot])) found.push(`mount ${point}`);
  for (const controller of ['memory', 'pids', 'cpu']) {
    const dir = join('/sys/fs/cgroup', controller, 'skiff');
    if (existsSync(dir)) {
      for (const entry of await readdir(dir)) if (entry.startsWith(`w-${run}`)) found.push(`cgroup ${join(dir, entry)}`);
    }
  }
  if (existsSync('/run/skiff')) {
    for (const worker of await readdir('/run/skiff')) {
      if (!worker.startsWith(`w-${run}`)) continue;
      const runcRoot = join('/run/skiff', worker, 'runc');
      const containers = existsSync(runcRoot) ? await readdir(runcRoot) : [];
      for (const id of containers) found.push(`container ${id} (runc --root ${runcRoot})`);
      if (containers.length === 0) await rm(join('/run/skiff', worker), { recursive: true, force: true });
    }
  }
  return found;
}
