/**
 * Turns: at most `limit` holders at once, the others waiting in order. Sandbox creation takes a
 * turn: creating a container is CPU-bound (about a quarter of a CPU-second on the build machines),
 * so on a burst, containers made a few at a time each finish sooner — and within their boot
 * timeout — than hundreds made at once, each crawling.
 */
export class Turns {
  private held = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`turns need a limit of at least 1, got ${limit}`);
  }

  /** Runs `work` in a turn of its own. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.take();
    try {
      return await work();
    } finally {
      this.give();
    }
  }

  /** Holders now, and those waiting for a turn. */
  get state(): { held: number; waiting: number } {
    return { held: this.held, waiting: this.waiting.length };
  }

  private take(): Promise<void> {
    if (this.held < this.limit) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private give(): void {
    const next = this.waiting.shift();
    // The turn passes straight to the next in line: `held` stays the same.
    if (next) next();
    else this.held--;
  }
}
