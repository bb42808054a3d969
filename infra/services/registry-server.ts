/**
 * Starts a private OCI distribution registry (Debian's docker-registry, which is CNCF
 * Distribution) on loopback, with its blobs and manifests under `dir`. Used by tests and local
 * bring-up; production points Skiff at whatever registry it is given.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertPortFree, GaveUp, startProcess, waitFor, type OwnedProcess } from './process.js';

const BINARY = '/usr/bin/docker-registry';

export interface LocalRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  process: OwnedProcess;
  /** The registry's own log and its access log (one line per HTTP request), in one file. */
  logFile: string;
  stop(): Promise<void>;
  /**
   * How many blob downloads (GET /v2/<name>/blobs/<digest> answered 2xx) the registry has
   * served since it started, counted from its access log.
   */
  blobPulls(): Promise<number>;
}

export async function startRegistry(options: {
  dir: string;
  port: number;
  /** Requires HTTP Basic credentials for every request. */
  htpasswd?: { username: string; password: string };
  /** In a process group of its own: a Ctrl-C at the terminal reaches only the owner, which stops it in order. */
  detached?: boolean;
  /** Aborts the wait for the registry to answer (it is then killed). */
  signal?: AbortSignal;
}): Promise<LocalRegistry> {
  await mkdir(join(options.dir, 'storage'), { recursive: true });
  const logFile = join(options.dir, 'registry.log');
  const configFile = join(options.dir, 'config.yml');
  let htpasswdFile: string | undefined;
  if (options.htpasswd) {
    htpasswdFile = join(options.dir, 'htpasswd');
    await writeFile(htpasswdFile, await bcryptLine(options.htpasswd.username, options.htpasswd.password), { mode: 0o600 });
  }
  await writeFile(configFile, registryConfig({ storage: join(options.dir, 'storage'), port: options.port, htpasswdFile }));
  await assertPortFree(options.port);
  // An empty environment: REGISTRY_* variables would override the file, which must say it all.
  const proc = startProcess(BINARY, ['serve', configFile], { logFile, env: {}, detached: options.detached ?? false });
  const url = `http://127.0.0.1:${options.port}`;
  await waitFor(
    'docker-registry',
    async () => {
      if (proc.hasExited()) throw new GaveUp(`it exited (${proc.child.exitCode ?? proc.child.signalCode}); see ${logFile}`);
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      // 401 is a ready registry that wants credentials.
      if (response.status !== 200 && response.status !== 401) throw new Error(`GET /v2/ answered ${response.status}`);
    },
    30000,
    100,
    { signal: options.signal },
  ).catch(async (error: unknown) => {
    await proc.stop('SIGKILL');
    throw error;
  });
  return {
    url,
    process: proc,
    logFile,
    stop: () => proc.stop('SIGTERM'),
    blobPulls: () => countBlobPulls(url, logFile),
  };
}

/** The registry's configuration: everything it needs is in this file (see `env: {}` above). */
function registryConfig(options: { storage: string; port: number; htpasswdFile: string | undefined }): string {
  // JSON strings are valid YAML double-quoted scalars, so any path quotes safely.
  const q = JSON.stringify;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(options.storage)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${q(`127.0.0.1:${options.port}`)}`,
    // A fixed secret per instance; without one it logs a warning and makes one up anyway.
    `  secret: ${q(randomBytes(16).toString('hex'))}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
  ];
  if (options.htpasswdFile) {
    lines.push('auth:', '  htpasswd:', '    realm: skiff-registry', `    path: ${q(options.htpasswdFile)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `user:<bcrypt>` made by Apache's htpasswd, the password passed on stdin rather than argv. */
function bcryptLine(username: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('htpasswd', ['-B', '-i', '-n', username], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', (error) => reject(new Error('htpasswd failed to start (install apache2-utils)', { cause: error })));
    child.on('close', (code) => {
      if (code === 0 && out.startsWith(`${username}:`)) resolve(`${out.trim()}\n`);
      else reject(new Error(`htpasswd exited ${code}: ${err.trim()}`));
    });
    child.stdin.end(password);
  });
}

/** A line of the access log (Apache combined format) for a blob GET the registry answered 2xx. */
const BLOB_PULL = /"GET \/v2\/\S+\/blobs\/sha256:[a-f0-9]{64}(?:\?\S*)? HTTP\/[\d.]+" 2\d\d /;

async function countBlobPulls(url: string, logFile: string): Promise<number> {
  // The registry writes an access line when a request's handler returns, which is not ordered
  // with the client seeing the last bytes. A request of our own, once logged, marks that every
  // request answered before it is in the file.
  const mark = randomBytes(8).toString('hex');
  const response = await fetch(`${url}/v2/?skiff-log-mark=${mark}`, { signal: AbortSignal.timeout(5000) });
  await response.body?.cancel();
  const log = await waitFor(
    'registry access log',
    async () => {
      const text = await readFile(logFile, 'utf8');
      if (!text.includes(`skiff-log-mark=${mark}`)) throw new Error(`mark ${mark} not yet in ${logFile}`);
      return text;
    },
    5000,
    20,
  );
  return log.split('\n').filter((line) => BLOB_PULL.test(line)).length;
}
