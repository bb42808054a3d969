/**
 * Keeps PostgreSQL from growing without end: finished invocation records and function log lines
 * older than the retention period are deleted, in bounded batches, a few times an hour.
 */
import type { Database } from '../infra/db/database.js';
import type { Logger } from '../infra/log.js';

const BATCH = 10_000;

export class Retention {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly retentionHours: number,
    private readonly log: Logger,
  ) {}

  start(everyMs = 15 * 60_000): void {
    this.timer = setInterval(() => {
      this.sweep().catch((error: unknown) => this.log.error({ err: error }, 'retention sweep failed'));
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Deletes what is past retention; returns how many rows of each kind went. */
  async sweep(): Promise<{ invocations: number; logs: number }> {
    const hours = String(this.retentionHours);
    const invocations = await this.drain(
      `DELETE FROM invocations WHERE id IN (SELECT id FROM invocations
         WHERE status IN ('succeeded', 'failed') AND created_at < now() - make_interval(hours => $1::int) LIMIT ${BATCH})`,
      hours,
    );
    const logs = await this.drain(
      `DELETE FROM function_logs WHERE id IN (SELECT id FROM function_logs WHERE at < now() - make_interval(hours => $1::int) LIMIT ${BATCH})`,
      hours,
    );
    if (invocations + logs > 0) this.log.info({ invocations, logs, retentionHours: this.retentionHours }, 'old records deleted');
    return { invocations, logs };
  }

  private async drain(sql: string, hours: string): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.db.query(sql, [hours]);
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < BATCH) return total;
    }
  }
}
