/**
 * Removes what a worker that died (SIGKILL, power loss) left behind: its containers, their mounts,
 * directories and cgroups. Runs before the worker starts making sandboxes.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from '../../infra/log.js';
import { removeEmptyParents } from './cgroups.js';
import type { CommandRunner } from '../process/command-runner.js';
import { unmountTree } from './mounts.js';
import type { OciRuntime } from './runc.js';

export async function removeLeftovers(oci: OciRuntime, launcher: CommandRunner, dirs: string[], cgroupParent: string, log: Logger): Promise<void> {
  const containers = await oci.list();
  for (const container of containers) await oci.delete(container.id);
  await unmountTree(launcher, ...dirs);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  await removeEmptyParents([cgroupParent, '/skiff']);
  if (containers.length > 0) log.warn({ containers: containers.length }, 'removed containers a previous run left behind');
}
