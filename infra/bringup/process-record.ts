/**
 * The processes a bring-up runs, recorded in a file under its state directory. Its children have
 * process groups of their own (a Ctrl-C reaches the bring-up alone, which stops them in order), so
 * a bring-up that is itself SIGKILLed leaves them running, holding their ports. The next start
 * reads the record and ends them first; and it refuses to start while the recorded bring-up is
 * still alive. A recorded pid counts only if that process names this state directory (in its
 * command line, its SKIFF_STATE_DIR or its working directory), so a pid reused by an unrelated process is left alone.
 */
import { readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive } from '../services/process.js';

/** How a bring-up's command line ends (dist/infra/bringup/main.js). */
const BRINGUP_MAIN = 'infra/bringup/main.js';

interface Recorded {
  bringup: number;
  /** In start order. */
  children: Array<{ name: string; pid: number }>;
}

export class ProcessRecord {
  private readonly file: string;
  private readonly stateDir: string;
  private readonly children = new Map<string, number>();

  constructor(options: { file: string; stateDir: string }) {
    this.file = options.file;
    this.stateDir = options.stateDir;
  }

  /**
   * Ends what a previous bring-up of this state directory left running (SIGTERM, SIGKILL after
   * `graceMs`; last started first), then records this process as the bring-up. Throws if that
   * bring-up is still running. Returns the names of the processes it ended.
   */
  async claim(graceMs = 30_000): Promise<string[]> {
    const previous = this.read();
    if (previous && previous.bringup !== process.pid && this.isBringup(previous.bringup)) {
      throw new Error(`another bring-up (pid ${previous.bringup}) runs with the state in ${this.stateDir}; stop it first`);
    }
    const ended: string[] = [];
    for (const { name, pid } of [...(previous?.children ?? [])].reverse()) {
      if (!this.ours(pid)) continue;
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (processAlive(pid) && Date.now() < deadline) await sleep(50);
      if (processAlive(pid)) process.kill(pid, 'SIGKILL');
      ended.push(`${name} (pid ${pid})`);
    }
    this.write();
    return ended;
  }

  /** Records the current process of `name` (a restart replaces the pid). */
  started(name: string, pid: number | undefined): void {
    if (pid === undefined) return;
    this.children.set(name, pid);
    this.write();
  }

  /** After a clean stop: nothing is left to end. */
  clear(): void {
    rmSync(this.file, { force: true });
  }

  private read(): Recorded | undefined {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as Recorded;
    } catch {
      return undefined;
    }
  }

  private write(): void {
    const recorded: Recorded = { bringup: process.pid, children: [...this.children].map(([name, pid]) => ({ name, pid })) };
    writeFileSync(`${this.file}.tmp`, `${JSON.stringify(recorded)}\n`);
    renameSync(`${this.file}.tmp`, this.file);
  }

  /** Whether `pid` is alive and names this state directory. */
  private ours(pid: number): boolean {
    if (!live(pid)) return false;
    const dir = this.stateDir;
    const within = (path: string): boolean => path === dir || path.startsWith(`${dir}/`);
    // redis-server rewrites its command line (and the environment's memory with it), but it
    // works in its directory, as PostgreSQL does in its cluster's.
    return proc(pid, 'cmdline').some(within) || proc(pid, 'environ').includes(`SKIFF_STATE_DIR=${dir}`) || within(cwd(pid));
  }

  /** Whether `pid` is a bring-up: of this state directory, since it is recorded in it (its own
   *  environment need not name the directory: the default one is not). */
  private isBringup(pid: number): boolean {
    return live(pid) && proc(pid, 'cmdline').some((arg) => arg.endsWith(BRINGUP_MAIN));
  }
}

const live = (pid: number): boolean => Number.isSafeInteger(pid) && pid > 1 && processAlive(pid);

/** The NUL-separated entries of /proc/<pid>/<what> (empty if it cannot be read). */
function proc(pid: number, what: 'cmdline' | 'environ'): string[] {
  try {
    return readFileSync(`/proc/${pid}/${what}`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** The working directory of `pid` ('' if it cannot be read). */
function cwd(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return '';
  }
}
