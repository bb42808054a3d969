/**
 * The OCI runtime, driven through its command line: runc (crun takes the same commands where the
 * cgroup layout allows it). Every call is a child process; errors carry runc's own stderr.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface OciRuntimeOptions {
  binary: string;
  /** State directory (`--root`): each worker keeps its containers apart from everyone else's. */
  root: string;
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
   * (`runc run --detach`): one runc invocation instead of create + start. The process's stdio are
   * the given file descriptors. `--no-new-keyring`: a session keyring per container would count
   * against the kernel's per-uid key quota (DESIGN.md).
   */
  run(id: string, bundle: string): Promise<{ stdout: Readable; stderr: Readable }> {
    return new Promise((resolve, reject) => {
      const args = ['--root', this.options.root, 'run', '--detach', '--no-new-keyring', '--bundle', bundle, id];
      // The container inherits these pipes and keeps writing to them after runc exits, so wait
      // for runc's 'exit', not 'close' (which would wait for the container to end).
      const child = spawn(this.options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let early = '';
      const collect = (chunk: Buffer): void => {
        if (early.length < 4096) early += chunk.toString();
      };
      child.stderr.on('data', collect);
      child.on('error', (error) => reject(new OciRuntimeError(`${this.options.binary} run could not start`, { cause: error })));
      child.on('exit', (code) => {
        child.stderr.off('data', collect);
        if (code === 0) resolve({ stdout: child.stdout, stderr: child.stderr });
        else {
          child.stdout.destroy();
          child.stderr.destroy();
          reject(new OciRuntimeError(`${this.options.binary} run ${id} exited ${code}: ${early.trim()}`));
        }
      });
    });
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

  private exec(args: string[], stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe']): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.binary, ['--root', this.options.root, ...args], { stdio: stdio as never });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', (error) => reject(new OciRuntimeError(`${this.options.binary} ${args[0]} could not start`, { cause: error })));
      child.on('close', (code) => {
        if (code === 0) resolve(stdout);
        else reject(new OciRuntimeError(`${this.options.binary} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      });
    });
  }
}
