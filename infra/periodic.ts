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
    this.timer = setInterval(() => void this.runOnce(), this.everyMs);
    // Background work: it never keeps a process alive by itself.
    this.timer.unref();
  }

  /** One pass now (or the one under way); a failure is reported, not thrown. */
  runOnce(): Promise<void> {
    this.running ??= this.pass()
      .catch(this.onError)
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
