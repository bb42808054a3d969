/**
 * Crash backoff: a function version whose containers are killed for memory several times in a
 * row gets no new container on this worker for a while (0.5 s, doubling up to 30 s, while it keeps
 * crashing). Each crash costs the host a container made for nothing — about a quarter of a
 * CPU-second — so a memory bomb called in a loop would otherwise spend the cores its neighbours
 * need. Calls meanwhile are refused (429 with Retry-After), warm instances keep serving, and one
 * call that ends well resets the streak.
 */
export interface CrashBackoffOptions {
  /** Crashes in a row that start the backoff. */
  streak: number;
  firstMs: number;
  maxMs: number;
  now: () => number;
}

interface Streak {
  crashes: number;
  refusedUntil: number;
  nextMs: number;
}

export class CrashBackoff {
  private readonly o: CrashBackoffOptions;
  private readonly streaks = new Map<string, Streak>();

  constructor(options: Partial<CrashBackoffOptions> = {}) {
    this.o = { streak: 3, firstMs: 500, maxMs: 30_000, now: Date.now, ...options };
  }

  crashed(key: string): void {
    const record = this.streaks.get(key) ?? { crashes: 0, refusedUntil: 0, nextMs: this.o.firstMs };
    record.crashes++;
    if (record.crashes >= this.o.streak) {
      record.refusedUntil = this.o.now() + record.nextMs;
      record.nextMs = Math.min(record.nextMs * 2, this.o.maxMs);
    }
    this.streaks.set(key, record);
  }

  succeeded(key: string): void {
    this.streaks.delete(key);
  }

  /** How long new containers of `key` are still refused, in ms (0: not refused). */
  refusedFor(key: string): number {
    const record = this.streaks.get(key);
    return record ? Math.max(0, record.refusedUntil - this.o.now()) : 0;
  }
}
