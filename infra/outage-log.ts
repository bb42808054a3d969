/**
 * Rate-limited logging of a dependency's connection errors (Redis: infra/queue/connections.ts;
 * PostgreSQL: infra/db/database.ts), so that an outage is a few log lines, not thousands.
 */
import type { Logger } from './log.js';

/** While an outage lasts, at most one error line per client this often. */
export const OUTAGE_LOG_EVERY_MS = 30_000;

/**
 * Logs a client's errors without flooding the log during an outage: the first error at once,
 * then at most one line per `everyMs` with the number of errors since the last line, and one
 * line when `recovered` is called after errors. A client reconnecting every second would
 * otherwise log 3600 lines an hour.
 */
export class OutageLog {
  private since: number | undefined;
  private lastLine = 0;
  private unlogged = 0;

  constructor(
    private readonly log: Pick<Logger, 'warn' | 'info'>,
    private readonly what: string,
    private readonly everyMs = OUTAGE_LOG_EVERY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while errors have come and no recovery since. */
  get down(): boolean {
    return this.since !== undefined;
  }

  error(error: Error): void {
    const now = this.now();
    if (this.since === undefined) {
      this.since = now;
      this.lastLine = now;
      this.unlogged = 0;
      this.log.warn({ error: summary(error) }, `${this.what} failed; retrying`);
      return;
    }
    this.unlogged++;
    if (now - this.lastLine < this.everyMs) return;
    this.log.warn({ error: summary(error), errors: this.unlogged, downMs: now - this.since }, `${this.what} still failing; retrying`);
    this.lastLine = now;
    this.unlogged = 0;
  }

  recovered(): void {
    if (this.since === undefined) return;
    this.log.info({ downMs: this.now() - this.since }, `${this.what} back`);
    this.since = undefined;
    this.unlogged = 0;
  }
}

/**
 * What is worth a log line of a connection error: its message and code. Not the stack (always
 * the socket's) nor what clients hang on it (pg-pool attaches the whole client).
 */
function summary(error: Error): { message: string; code?: string } {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? { message: error.message, code } : { message: error.message };
}

/**
 * Logs the `error` events of `emitter` (a BullMQ Queue or Worker, say) through an OutageLog: a
 * Queue with no listener writes every connection error to the console, once per reconnect.
 */
export function logErrors(
  emitter: { on(event: 'error', listener: (error: Error) => void): unknown },
  log: Pick<Logger, 'warn' | 'info'>,
  what: string,
): OutageLog {
  const outage = new OutageLog(log, what);
  emitter.on('error', (error) => outage.error(error));
  return outage;
}
