/**
 * The gateway's cache of current function versions, so the call path makes no database query.
 * Every deploy and delete is announced on the function-events channel; each gateway drops the
 * name from its cache on the announcement (the deploying gateway before it answers 201), and
 * entries also expire after a few seconds in case an announcement is missed. The cache is bounded
 * (names that do not exist are remembered too, and anyone may ask for any name): past its size the
 * oldest entries go first. While PostgreSQL does not answer, a function the gateway knows keeps
 * being called with the version it last read (stale, but the call works: its record waits in the
 * record batches); one it does not know answers 503.
 */
import { SkiffError } from '../../infra/errors.js';
import type { FunctionInfo, FunctionStore } from '../../infra/db/function-store.js';

export class FunctionCache {
  private readonly entries = new Map<string, { info: FunctionInfo | undefined; until: number }>();

  constructor(
    private readonly store: Pick<FunctionStore, 'get'>,
    /** Names remembered at most (SKIFF_NOT_FOUND_CACHE_SIZE). */
    private readonly maxEntries: number,
    /** How long an entry is trusted (SKIFF_FUNCTION_CACHE_TTL_MS). */
    private readonly ttlMs: number,
  ) {}

  async get(name: string): Promise<FunctionInfo | undefined> {
    const hit = this.entries.get(name);
    if (hit && hit.until > Date.now()) return hit.info;
    let info: FunctionInfo | undefined;
    try {
      info = await this.store.get(name);
    } catch (cause) {
      if (hit) return hit.info;
      throw new SkiffError('Unavailable', 'the function store (PostgreSQL) does not answer; try again', { cause });
    }
    this.entries.delete(name);
    // A Map keeps insertion order: the first key is the oldest entry.
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(name, { info, until: Date.now() + this.ttlMs });
    return info;
  }

  get size(): number {
    return this.entries.size;
  }

  forget(name: string): void {
    this.entries.delete(name);
  }
}
