/**
 * Checks of the host a worker runs on, made once at start with a clear message, instead of a
 * cryptic runc failure on the first call.
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { HostError } from '../../infra/host-error.js';

/**
 * Container roots live below `dir`, and runc prepares them from inside the container's user
 * namespace, as an unprivileged host uid: every directory on the way must be searchable by others.
 * Throws a HostError of kind `unsuitable` saying what to change.
 */
export function assertReachableByContainers(dir: string): void {
  for (let current = dir; ; current = dirname(current)) {
    const mode = statSync(current).mode;
    if ((mode & 0o001) === 0) {
      throw new HostError(
        'unsuitable',
        `${current} is not searchable by other users (mode ${(mode & 0o777).toString(8)}); containers under ${dir} could not reach their root. ` +
          `Run \`chmod o+x ${current}\` or set SKIFF_STATE_DIR to a directory under a searchable path.`,
      );
    }
    if (current === dirname(current)) return;
  }
}
