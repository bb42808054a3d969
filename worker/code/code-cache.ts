/**
 * The worker's cache of function code: each code zip (by sha256) unpacked once into a directory
 * that every instance of that code binds read-only at /var/task. A miss reads the zip from the
 * metadata database; concurrent misses for the same code share one fetch. Each directory is made
 * a read-only mount point of itself once, so the binds made from it are read-only inside the
 * containers too; `close` unmounts them.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SkiffError } from '../../infra/errors.js';
import type { Database } from '../../infra/db/database.js';
import { extractZip, type ZipLimits } from '../../gateway/code/zip-archive.js';
import { makeReadOnlyMountPoint, unmountTree } from '../sandbox/mounts.js';

export class CodeCache {
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly ready = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly dir: string,
    private readonly limits: ZipLimits,
  ) {}

  /** Directory holding the unpacked code with this digest. */
  ensure(sha256: string): Promise<string> {
    const target = join(this.dir, sha256);
    if (this.ready.has(sha256)) return Promise.resolve(target);
    let pending = this.inflight.get(sha256);
    if (!pending) {
      pending = this.fetch(sha256, target).finally(() => this.inflight.delete(sha256));
      this.inflight.set(sha256, pending);
    }
    return pending;
  }

  private async fetch(sha256: string, target: string): Promise<string> {
    if (!existsSync(target)) {
      const { rows } = await this.db.query<{ zip: Buffer }>('SELECT zip FROM code_blobs WHERE sha256 = $1', [sha256]);
      const zip = rows[0]?.zip;
      if (!zip) throw new SkiffError('FunctionNotFound', `code ${sha256} is not stored (was the function deleted?)`);
      await mkdir(this.dir, { recursive: true });
      await extractZip(zip, target, this.limits);
    }
    await makeReadOnlyMountPoint(target);
    this.ready.add(sha256);
    return target;
  }

  /** Unmounts the code directories (their files stay, for the next start). */
  async close(): Promise<void> {
    await Promise.all(this.inflight.values());
    await unmountTree(this.dir);
    this.ready.clear();
  }
}
