/**
 * The worker's cache of function code: each code zip (by sha256) unpacked once into a directory
 * that every instance of that code binds read-only at /var/task. A miss reads the zip from the
 * metadata database; concurrent misses for the same code share one fetch.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SkiffError } from '../../infra/errors.js';
import type { Database } from '../../infra/db/database.js';
import { extractZip, type ZipLimits } from '../../gateway/code/zip-archive.js';

export class CodeCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly db: Database,
    private readonly dir: string,
    private readonly limits: ZipLimits,
  ) {}

  /** Directory holding the unpacked code with this digest. */
  ensure(sha256: string): Promise<string> {
    const target = join(this.dir, sha256);
    if (existsSync(target)) return Promise.resolve(target);
    let pending = this.inflight.get(sha256);
    if (!pending) {
      pending = this.fetch(sha256, target).finally(() => this.inflight.delete(sha256));
      this.inflight.set(sha256, pending);
    }
    return pending;
  }

  private async fetch(sha256: string, target: string): Promise<string> {
    const { rows } = await this.db.query<{ zip: Buffer }>('SELECT zip FROM code_blobs WHERE sha256 = $1', [sha256]);
    const zip = rows[0]?.zip;
    if (!zip) throw new SkiffError('FunctionNotFound', `code ${sha256} is not stored (was the function deleted?)`);
    await mkdir(this.dir, { recursive: true });
    await extractZip(zip, target, this.limits);
    return target;
  }
}
