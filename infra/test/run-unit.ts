/**
 * `npm run test:unit`: every test that needs no root and no services, as any user, in well under a
 * minute. It runs the built tests (dist/: `npm run build` first, as whoever owns the tree) and
 * writes nothing in the project: each test file runs with `node` itself (a tap test file is a
 * program that prints TAP), not with tap's runner, which keeps state in .tap/.
 *
 * The set: test/unit, test/gateway and test/runtime, less the files in NEEDS. Tests that need
 * Redis or PostgreSQL for part of their cases skip those when REDIS_URL / DATABASE_URL are unset,
 * and this runner unsets them; test/e2e needs root, runc and the services (`npm test` runs it all).
 * Arguments: test files to run instead of the set.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';

/** Files of the unit directories that need more than a plain user has, and what. */
const NEEDS: Record<string, string> = {
  'unit/layer-store.test.js': 'root (unpacking chowns files; overlay mounts)',
  'unit/layer-budget.test.js': 'root (unpacking chowns files)',
  'unit/fleet.test.js': 'Redis (REDIS_URL)',
  'unit/tenant-quotas.test.js': 'Redis (REDIS_URL)',
  'unit/connections-sentinel.test.js': 'Redis servers and Sentinels it starts (redis-server, redis-sentinel)',
  'gateway/function-url.test.js': 'Redis (REDIS_URL)',
};
const DIRS = ['unit', 'gateway', 'runtime'];
const TEST_ROOT = 'dist/test';
/** A file that runs longer is stopped and fails (tap's own limit in package.json). */
const FILE_TIMEOUT_MS = 180_000;

interface FileResult {
  file: string;
  code: number | null;
  output: string;
  total: number;
  pass: number;
  fail: number;
  skip: number;
  ms: number;
}

const started = performance.now();
const asked = process.argv.slice(2);
const files = asked.length > 0 ? asked : await unitFiles();
const env: NodeJS.ProcessEnv = { ...process.env };
for (const name of ['REDIS_URL', 'DATABASE_URL', 'REGISTRY_URL', 'SKIFF_TEST_STATE', 'SKIFF_TEST_RUN']) delete env[name];

const results: FileResult[] = [];
const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(availableParallelism(), queue.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const result = await runFile(file);
      results.push(result);
      const counts = `${result.pass}/${result.total}${result.skip ? `, ${result.skip} skipped` : ''}`;
      if (result.code === 0) console.log(`ok      ${result.file} (${counts}, ${Math.round(result.ms)} ms)`);
      else {
        console.log(`not ok  ${result.file} (exit ${result.code}, ${result.fail} failed of ${result.total})`);
        console.log(result.output.trimEnd().replace(/^/gm, '    '));
      }
    }
  }),
);

const sum = (key: 'pass' | 'fail' | 'skip'): number => results.reduce((n, r) => n + r[key], 0);
const failedFiles = results.filter((r) => r.code !== 0);
console.log(
  `tests: ${sum('pass')} passed, ${sum('fail')} failed, ${sum('skip')} skipped in ${results.length} files` +
    `${failedFiles.length ? ` (${failedFiles.length} files failed)` : ''}, ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(failedFiles.length === 0 ? 0 : 1);

async function unitFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of DIRS) {
    for (const entry of await readdir(join(TEST_ROOT, dir), { withFileTypes: true, recursive: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.test.js')) continue;
      const file = join(entry.parentPath, entry.name);
      const need = NEEDS[relative(TEST_ROOT, file)];
      if (need) console.log(`skip    ${file}: needs ${need}; npm test runs it`);
      else out.push(file);
    }
  }
  return out.sort();
}

function runFile(file: string): Promise<FileResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [file], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: FILE_TIMEOUT_MS, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let settled = false;
    const done = (code: number | null): void => {
      if (settled) return;
      settled = true;
      // tap's summary of the file: "# { total: 10, pass: 9, fail: 1, skip: 2 }"
      const summary = /^# \{ total: (\d+)(.*)\}$/m.exec(
        output
          .split('\n')
          .filter((line) => line.startsWith('# { total'))
          .at(-1) ?? '',
      );
      const count = (key: string): number => Number(new RegExp(`${key}: (\\d+)`).exec(summary?.[2] ?? '')?.[1] ?? 0);
      const total = Number(summary?.[1] ?? 0);
      const fail = summary ? count('fail') : 1;
      const passed = code === 0 && fail === 0;
      resolve({ file, code: passed ? 0 : code || 1, output, total, pass: count('pass'), fail, skip: count('skip'), ms: performance.now() - t0 });
    };
    child.on('error', (error) => {
      output += String(error);
      done(1);
    });
    child.on('close', (code) => done(code));
  });
}
