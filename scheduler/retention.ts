/**
 * Keeps PostgreSQL from growing without end: finished invocation records and function log lines
 * older than the retention period are deleted, and so are those past each tenant's bounds
 * (`maxInvocationRecords`, `maxLogLines`: the oldest first), in bounded batches, a few times an
 * hour. What a tenant's bounds removed is counted (`pruned`), so an operator sees a tenant that
 * keeps hitting them.
 */
import type { Database } from '../infra/db/database.js';
import type { Logger } from '../infra/log.js';
import type { TenantQuotas } from '../infra/tenancy/quotas.js';

export interface RetentionBounds {
  /** Every tenant with its effective quotas. */
  tenants(): Promise<Array<{ name: string; quotas: Pick<TenantQuotas, 'maxInvocationRecords' | 'maxLogLines'> }>>;
  /** Told how many rows a tenant's bounds removed. */
  pruned(kind: 'invocations' | 'logs', rows: number): void;
}

export interface SweepResult {
  invocations: number;
  logs: number;
  /** Of those, removed because a tenant was over its bounds. */
  overBounds: { invocations: number; logs: number };
}

const BATCH = 10_000;

export class Retention {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly retentionHours: number,
    private readonly log: Logger,
    private readonly bounds?: RetentionBounds,
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
  async sweep(): Promise<SweepResult> {
    const hours = String(this.retentionHours);
    const invocations = await this.drain(
      `DELETE FROM invocations WHERE id IN (SELECT id FROM invocations
         WHERE status IN ('succeeded', 'failed', 'refused') AND created_at < now() - make_interval(hours => $1::int) LIMIT ${BATCH})`,
      hours,
    );
    const logs = await this.drain(
      `DELETE FROM function_logs WHERE id IN (SELECT id FROM function_logs WHERE at < now() - make_interval(hours => $1::int) LIMIT ${BATCH})`,
      hours,
    );
    if (invocations + logs > 0) this.log.info({ invocations, logs, retentionHours: this.retentionHours }, 'old records deleted');
    const overBounds = await this.sweepBounds();
    return { invocations: invocations + overBounds.invocations, logs: logs + overBounds.logs, overBounds };
  }

  /** Each tenant's oldest finished records and log lines past its bounds. */
  private async sweepBounds(): Promise<{ invocations: number; logs: number }> {
    const total = { invocations: 0, logs: 0 };
    for (const tenant of (await this.bounds?.tenants()) ?? []) {
      const invocations = await this.drain(
        `DELETE FROM invocations WHERE id IN (SELECT id FROM invocations
           WHERE tenant = $1 AND status IN ('succeeded', 'failed', 'refused') ORDER BY created_at DESC, id OFFSET $2::int LIMIT ${BATCH})`,
        tenant.name,
        tenant.quotas.maxInvocationRecords,
      );
      const logs = await this.drain(
        `DELETE FROM function_logs WHERE id IN (SELECT l.id FROM function_logs l JOIN functions f ON f.name = l.function_name
           WHERE f.tenant = $1 ORDER BY l.id DESC OFFSET $2::int LIMIT ${BATCH})`,
        tenant.name,
        tenant.quotas.maxLogLines,
      );
      if (invocations > 0) this.bounds?.pruned('invocations', invocations);
      if (logs > 0) this.bounds?.pruned('logs', logs);
      if (invocations + logs > 0) this.log.info({ tenant: tenant.name, invocations, logs }, "records past the tenant's bounds deleted");
      total.invocations += invocations;
      total.logs += logs;
    }
    return total;
  }

  private async drain(sql: string, ...params: Array<string | number>): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.db.query(sql, params);
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < BATCH) return total;
    }
  }
}
