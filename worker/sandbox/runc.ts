/**
 * The OCI runtime, driven through its command line: runc (crun takes the same commands where the
 * cgroup layout allows it). Every call is a command run by the worker's launcher (never forked
 * from the worker itself); errors carry runc's own stderr.
 */
import type { Readable } from 'node:stream';
import { exitText, type CommandRunner } from '../process/command-runner.js';
import { processLauncher } from '../process/launcher.js';

export interface OciRuntimeOptions {
  binary: string;
  /** State directory (`--root`): each worker keeps its containers apart from everyone else's. */
  root: string;
  /** Runs runc; by default the process's launcher (worker/process/launcher.ts). */
  launcher?: CommandRunner;
}

export interface ContainerState {
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused';
  pid: number;
  bundle: string;
}

export class OciRuntimeError extends Error {
  readonly code = 'OciRuntimeFailed';
}

export class OciRuntime {
  constructor(private readonly options: OciRuntimeOptions) {}

  /**
   * Creates the container (namespaces, cgroup, root file system) and starts its process at once
   * (`runc run --detach`): one runc invocation instead of create + start. The process's stdout and
   * stderr are pipes, returned; they end when its last process exits. `--no-new-keyring`: a session keyring per container would count
   * against the kernel's per-uid key quota (`kernel.keys.maxkeys`, 200 keys, shared by every
   * container whose root maps to the same host uid: the 201st failed with "disk quota exceeded").
   */
  async run(id: string, bundle: string): Promise<{ stdout: Readable; stderr: Readable }> {
    const args = ['--root', this.options.root, 'run', '--detach', '--no-new-keyring', '--bundle', bundle, id];
    // The container keeps writing to runc's stdout and stderr after runc exits: the launcher
    // answers at runc's exit and hands those pipes over.
    const result = await this.launcher()
      .runKeepingPipes(this.options.binary, args)
      .catch((error: unknown) => {
        throw new OciRuntimeError(`${this.options.binary} run ${id}: ${(error as Error).message}`, { cause: error });
      });
    if (result.code === 0 && result.pipes) return result.pipes;
    throw new OciRuntimeError(`${this.options.binary} run ${id} exited (${exitText(result)}): ${result.stderr.trim()}`);
  }

  async kill(id: string, signal = 'KILL'): Promise<void> {
    await this.exec(['kill', id, signal]);
  }

  /** Removes the container whatever its state (`--force` kills it first). */
  async delete(id: string): Promise<void> {
    await this.exec(['delete', '--force', id]);
  }

  async state(id: string): Promise<ContainerState> {
    return JSON.parse(await this.exec(['state', id])) as ContainerState;
  }

  async list(): Promise<ContainerState[]> {
    const out = await this.exec(['list', '--format', 'json']);
    const parsed = JSON.parse(out.trim() || 'null') as ContainerState[] | null;
    return parsed ?? [];
  }

  private async exec(args: string[]): Promise<string> {
    const result = await this.launcher()
      .run(this.options.binary, ['--root', this.options.root, ...args])
      .catch((error: unknown) => {
        throw new OciRuntimeError(`${this.options.binary} ${args.join(' ')}: ${(error as Error).message}`, { cause: error });
      });
    if (result.code === 0 && result.truncated) throw new OciRuntimeError(`${this.options.binary} ${args.join(' ')}: output too large`);
    if (result.code === 0) return result.stdout;
    throw new OciRuntimeError(`${this.options.binary} ${args.join(' ')} exited (${exitText(result)}): ${result.stderr.trim()}`);
  }

  private launcher(): CommandRunner {
    return this.options.launcher ?? processLauncher();
  }
}
