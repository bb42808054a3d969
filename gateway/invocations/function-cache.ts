/**
 * The gateway's cache of current function versions, so the call path makes no database query.
 * Every deploy and delete is announced on the function-events channel; each gateway drops the
 * name from its cache on the announcement (the deploying gateway before it answers 201), and
 * entries also expire after a few seconds in case an announcement is missed.
 */
import type { FunctionInfo, FunctionStore } from '../../infra/db/function-store.js';

const TTL_MS = 5000;

export class FunctionCache {
  private readonly entries = new Map<string, { info: FunctionInfo | undefined; until: number }>();

  constructor(private readonly store: Pick<FunctionStore, 'get'>) {}

  async get(name: string): Promise<FunctionInfo | undefined> {
    const hit = this.entries.get(name);
    if (hit && hit.until > Date.now()) return hit.info;
    const info = await this.store.get(name);
    this.entries.set(name, { info, until: Date.now() + TTL_MS });
    return info;
  }

  forget(name: string): void {
    this.entries.delete(name);
  }
}
