/**
 * Work done every so often in the background (a failover check, a reconciliation pass): one pass
 * at a time, never two overlapping when one runs longer than the interval; a failed pass is
 * reported and the next one runs as usual; `stop` waits for the pass under way.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly everyMs: number,
    private readonly pass: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.pass()
        .catch(this.onError)
        .finally(() => (this.running = undefined));
    }, this.everyMs);
    // Background work: it never keeps a process alive by itself.
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
