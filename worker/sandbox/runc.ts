/**
 * The OCI runtime, driven through its command line: runc (crun takes the same commands where the
 * cgroup layout allows it). Every call is a command run by the worker's launcher (never forked
 * from the worker itself). Every failure is a HostError (infra/host-error.ts) of kind `oci-runtime`
 * carrying runc's command line, exit and stderr, or `not-found` when runc has no such container:
 * this module is the one that reads runc's messages.
 */
import type { Readable } from 'node:stream';
import { commandFailed, commandNotRun, HostError, type CommandEnd } from '../../infra/host-error.js';
import type { CommandRunner } from '../process/command-runner.js';

export interface OciRuntimeOptions {
  binary: string;
  /** State directory (`--root`): each worker keeps its containers apart from everyone else's. */
  root: string;
  /** Runs runc: the worker's launcher (worker/process/launcher.ts). */
  launcher: CommandRunner;
}

export interface ContainerState {
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused';
  pid: number;
  bundle: string;
}

/** What runc (and crun) print when asked about a container they do not have. */
const NO_SUCH_CONTAINER = /does not exist|not found/i;

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
    const command = `${this.options.binary} run ${id}`;
    const result = await this.launcher()
      .runKeepingPipes(this.options.binary, args)
      .catch((error: unknown) => {
        throw commandNotRun('oci-runtime', command, error);
      });
    if (result.code === 0 && result.pipes) return result.pipes;
    throw this.failed(command, result);
  }

  async kill(id: string, signal = 'KILL'): Promise<void> {
    await this.exec(['kill', id, signal]);
  }

  /** Removes the container whatever its state (`--force` kills it first); `not-found` if there is none. */
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
    const command = `${this.options.binary} ${args.join(' ')}`;
    const result = await this.launcher()
      .run(this.options.binary, ['--root', this.options.root, ...args])
      .catch((error: unknown) => {
        throw commandNotRun('oci-runtime', command, error);
      });
    if (result.code === 0 && result.truncated) throw new HostError('oci-runtime', `${command}: output too large`, { command, end: result });
    if (result.code === 0) return result.stdout;
    throw this.failed(command, result);
  }

  private failed(command: string, end: CommandEnd): HostError {
    return commandFailed(end.code !== 0 && NO_SUCH_CONTAINER.test(end.stderr) ? 'not-found' : 'oci-runtime', command, end);
  }

  private launcher(): CommandRunner {
    return this.options.launcher;
  }
}
