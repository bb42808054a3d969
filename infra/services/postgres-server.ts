/**
 * Starts a private PostgreSQL server (Debian's postgresql) on loopback with its cluster under
 * `dir`. PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
 * `postgres` system user and the server runs as that user.
 */
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, readFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import pg from 'pg';
import { assertPortFree, GaveUp, startProcess, waitFor, type OwnedProcess } from './process.js';

const run = promisify(execFile);

export interface LocalPostgres {
  url: string;
  process: OwnedProcess;
  stop(): Promise<void>;
}

/** Directory of the newest installed PostgreSQL server binaries. */
export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'postgres'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (install the postgresql package)');
  return join(base, newest, 'bin');
}

export async function startPostgres(options: {
  dir: string;
  port: number;
  database: string;
  user: string;
  /** False for throw-away test clusters: skips fsync, which is most of their disk time. */
  durable: boolean;
  /** In a process group of its own: a Ctrl-C at the terminal reaches only the owner, which stops it in order. */
  detached?: boolean;
  /** Aborts the wait for the server to answer (the server is then stopped). */
  signal?: AbortSignal;
}): Promise<LocalPostgres> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? await systemUser('postgres') : undefined;
  // Spawned directly as that user (not through runuser), so signals reach the server itself.
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const data = join(options.dir, 'data');
  const sockets = join(options.dir, 'sockets');
  await mkdir(options.dir, { recursive: true });
  await mkdir(sockets, { recursive: true });
  if (owner) await chown(options.dir, owner.uid, owner.gid);
  if (owner) await chown(sockets, owner.uid, owner.gid);
  if (!existsSync(join(data, 'PG_VERSION'))) {
    await run(join(bin, 'initdb'), ['-D', data, '-U', options.user, '--auth=trust', '--encoding=UTF8', '--no-sync'], { ...as, cwd: options.dir });
  }
  await assertPortFree(options.port);
  const proc = startProcess(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(options.port),
      '-k',
      sockets,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `fsync=${options.durable ? 'on' : 'off'}`,
      '-c',
      'max_connections=200',
      '-c',
      'shared_buffers=64MB',
    ],
    { ...as, cwd: options.dir, logFile: join(options.dir, 'postgres.log'), detached: options.detached ?? false },
  );
  const admin = `postgres://${options.user}@127.0.0.1:${options.port}/postgres`;
  // After a crash, PostgreSQL replays its WAL before it answers: that may take a while.
  await waitFor(
    'postgres',
    async () => {
      // After a SIGKILL of the last server, it refuses to start while that one's backends live on
      // ("pre-existing shared memory block is still in use"): they notice and leave within a second.
      if (proc.hasExited()) throw new GaveUp(`it exited (${proc.child.exitCode ?? proc.child.signalCode}); see ${options.dir}/postgres.log`);
      // This server, not another one (its lock file names the server that owns the cluster).
      const owner = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      if (owner !== proc.child.pid) throw new Error(`the cluster's lock names pid ${owner}`);
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      try {
        const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [options.database]);
        if (rowCount === 0) await client.query(`CREATE DATABASE "${options.database}"`);
      } finally {
        await client.end();
      }
    },
    60000,
    100,
    { signal: options.signal },
  ).catch(async (error: unknown) => {
    await proc.stop('SIGINT', 5000);
    throw error;
  });
  // SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, stop cleanly.
  return { url: `postgres://${options.user}@127.0.0.1:${options.port}/${options.database}`, process: proc, stop: () => proc.stop('SIGINT') };
}

async function systemUser(name: string): Promise<{ uid: number; gid: number }> {
  try {
    const { stdout } = await run('id', ['-u', name]);
    const { stdout: gid } = await run('id', ['-g', name]);
    return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
  } catch (cause) {
    throw new Error(`system user ${name} is missing (it comes with the postgresql package)`, { cause });
  }
}
