/**
 * Invocation records in PostgreSQL: what each call was, how it ended. Final states are written in
 * batches off the call path (one multi-row upsert every few ms), so recording costs the caller
 * nothing; an asynchronous call's `queued` row is written before the gateway answers 202.
 *
 * An accepted asynchronous call's row is the record that it was accepted: it keeps the event and
 * the attempt the call is at until the call ends, so the reconciler (scheduler/reconciler.ts) can
 * queue it again if Redis loses its job. `refused`: the call was recorded but could not be queued,
 * and the caller was answered 503; nothing runs it. Every status change stamps `updated_at`.
 */
import type { PoolClient } from 'pg';
import type { ErrorBody } from '../errors.js';
import { chunked, rowsPerStatement } from './chunks.js';
import { inTransaction, type Database } from './database.js';

export type InvocationStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'refused';

/** How long an Idempotency-Key names its invocation. */
export const IDEMPOTENCY_WINDOW = '1 day';

/** An Idempotency-Key, scoped to a tenant's function. */
export interface IdempotencyScope {
  tenant: string;
  functionName: string;
  key: string;
}

/** An async call still on its way, as the reconciler sees it (no event: read only if re-queued). */
export interface UnfinishedCall {
  id: string;
  functionName: string;
  functionVersion: number;
  tenant: string;
  callerKeyId?: string;
  status: 'queued' | 'running';
  attempt: number;
  /** When the call was accepted (ms since the epoch). */
  acceptedAt: number;
  /** `updated_at` in µs since the epoch: a re-queue happens only if the row is unchanged since. */
  stamp: string;
  /** The node that wrote `running`, for a running call. */
  workerId?: string;
}

export interface InvocationRecord {
  id: string;
  functionName: string;
  /** The tenant of the function when the call was made (filled from the function if not given). */
  tenant?: string;
  /** The key that made the call, when one was checked (an invoker reads only its own calls' records). */
  callerKeyId?: string;
  functionVersion: number;
  async: boolean;
  status: InvocationStatus;
  result?: unknown;
  error?: ErrorBody;
  cold?: boolean;
  workerId?: string;
  durationMs?: number;
  /** The event of an accepted async call, kept until the call ends (never read back by `get`). */
  event?: unknown;
  /** The attempt an async call is at; a write of an earlier attempt does not override a later one. */
  attempt?: number;
}

/** PostgreSQL's jsonb and text reject U+0000; a handler may return it. */
export function jsonForPostgres(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? v.replaceAll('\u0000', '\uFFFD') : v));
}

const COLUMNS = [
  'id',
  'function_name',
  'tenant',
  'caller_key_id',
  'function_version',
  'async',
  'status',
  'result',
  'error',
  'cold',
  'worker_id',
  'duration_ms',
  'finished_at',
  'event',
  'attempt',
];
const FINAL: ReadonlySet<InvocationStatus> = new Set(['succeeded', 'failed', 'refused']);
/** A batch of any size goes in statements under PostgreSQL's parameter limit, and of moderate size. */
const ROWS_PER_STATEMENT = rowsPerStatement(COLUMNS.length);
const BYTES_PER_STATEMENT = 8 * 1024 * 1024;

type Row = unknown[];

/** Backoff of a batch PostgreSQL did not take: 250 ms doubling to 10 s. */
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 10_000;

export class InvocationRecords {
  private batch: InvocationRecord[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = 0;

  constructor(
    private readonly db: Database,
    private readonly onError: (error: unknown) => void,
    private readonly flushDelayMs = 20,
    /** Records kept while PostgreSQL is away (about 1 KiB each without their results). */
    private readonly maxBuffered = 100_000,
  ) {}

  /**
   * Writes now (an async call's states: its 202 and its retries depend on them). False when the
   * row was left as it was: the call had ended already (succeeded or failed), or is at a later attempt.
   */
  async write(record: InvocationRecord): Promise<boolean> {
    return (await this.upsert([record])) > 0;
  }

  /**
   * Records an accepted async call as `queued`, with its event. With an Idempotency-Key, in one
   * transaction with the key: a key already taken within the last day (and not refused) names
   * the call it was taken by, and nothing is written (`replayed`).
   */
  async accept(record: InvocationRecord, idempotency?: IdempotencyScope): Promise<{ id: string; replayed: boolean }> {
    if (!idempotency) {
      await this.upsert([record]);
      return { id: record.id, replayed: false };
    }
    return inTransaction(this.db, async (client) => {
      const scope = [idempotency.tenant, idempotency.functionName, idempotency.key];
      // Concurrent submissions with one key wait here for each other (the primary key's lock),
      // and the WHERE sees the latest version of the row: one of them takes it.
      const { rows } = await client.query(
        `INSERT INTO idempotency_keys (tenant, function_name, key, invocation_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, function_name, key) DO UPDATE SET invocation_id = EXCLUDED.invocation_id, refused = false, created_at = now()
         WHERE idempotency_keys.refused OR idempotency_keys.created_at < now() - interval '${IDEMPOTENCY_WINDOW}'
         RETURNING invocation_id`,
        [...scope, record.id],
      );
      if (rows.length === 0) {
        const taken = await client.query<{ invocation_id: string }>(
          'SELECT invocation_id FROM idempotency_keys WHERE tenant = $1 AND function_name = $2 AND key = $3',
          scope,
        );
        const id = taken.rows[0]?.invocation_id;
        if (id === undefined) throw new Error('an idempotency key taken by another call has no row');
        return { id, replayed: true };
      }
      await this.upsertRows([this.row(record)], client);
      return { id: record.id, replayed: false };
    });
  }

  /**
   * Records an accepted async call as `queued` unless a call of its id exists already (then
   * nothing is written: false). For calls whose id names what they are (a schedule's tick), so
   * accepting one twice neither makes a second call nor sets a running call back to `queued`.
   */
  async acceptOnce(record: InvocationRecord): Promise<boolean> {
    const row = this.row(record);
    const { rowCount } = await this.db.query(
      `INSERT INTO invocations (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (id) DO NOTHING`,
      row,
    );
    return (rowCount ?? 0) > 0;
  }

  /** The call could not be queued and its caller was answered 503: nothing may run it; its key may be used again. */
  async refuse(id: string, idempotency?: IdempotencyScope): Promise<void> {
    await this.db.query(
      "UPDATE invocations SET status = 'refused', event = NULL, finished_at = now(), updated_at = now() WHERE id = $1 AND status = 'queued'",
      [id],
    );
    if (idempotency) {
      await this.db.query('UPDATE idempotency_keys SET refused = true WHERE tenant = $1 AND function_name = $2 AND key = $3 AND invocation_id = $4', [
        idempotency.tenant,
        idempotency.functionName,
        idempotency.key,
        id,
      ]);
    }
  }

  /**
   * Async calls `queued` or `running`, unchanged for longer than `graceMs` (by the database's
   * clock), that kept their event (rows from before events were kept cannot be queued again).
   */
  async unfinishedAsync(graceMs: number, limit = 1000): Promise<UnfinishedCall[]> {
    const { rows } = await this.db.query(
      `SELECT id, function_name, function_version, tenant, caller_key_id, status, coalesce(attempt, 1) AS attempt, worker_id,
         (extract(epoch FROM created_at) * 1000)::bigint AS accepted_ms, (extract(epoch FROM updated_at) * 1000000)::bigint AS stamp
       FROM invocations
       WHERE async AND status IN ('queued', 'running') AND updated_at < now() - $1 * interval '1 millisecond' AND event IS NOT NULL
       ORDER BY updated_at LIMIT $2`,
      [graceMs, limit],
    );
    return (rows as Array<Record<string, unknown>>).map((row) => ({
      id: row.id as string,
      functionName: row.function_name as string,
      functionVersion: row.function_version as number,
      tenant: (row.tenant as string | null) ?? 'default',
      ...(row.caller_key_id === null ? {} : { callerKeyId: row.caller_key_id as string }),
      status: row.status as 'queued' | 'running',
      attempt: row.attempt as number,
      acceptedAt: Number(row.accepted_ms),
      stamp: String(row.stamp),
      ...(row.worker_id === null ? {} : { workerId: row.worker_id as string }),
    }));
  }

  /**
   * Takes an unfinished call to queue it again: back to `queued` (its attempt unchanged), if the
   * row has not changed since `call` was read (so of several schedulers one does it, and a call
   * that moved on meanwhile is left alone). Its event, or undefined if it was not taken.
   */
  async claimRequeue(call: UnfinishedCall): Promise<{ event: unknown; requeues: number } | undefined> {
    const { rows } = await this.db.query(
      `UPDATE invocations SET status = 'queued', updated_at = now(), requeues = requeues + 1
       WHERE id = $1 AND status = $2 AND (extract(epoch FROM updated_at) * 1000000)::bigint = $3::bigint AND event IS NOT NULL
       RETURNING event, requeues`,
      [call.id, call.status, call.stamp],
    );
    const row = rows[0] as { event: unknown; requeues: number } | undefined;
    return row ? { event: row.event, requeues: row.requeues } : undefined;
  }

  /** Forgets Idempotency-Keys older than their window. */
  async pruneIdempotencyKeys(): Promise<number> {
    const { rowCount } = await this.db.query(`DELETE FROM idempotency_keys WHERE created_at < now() - interval '${IDEMPOTENCY_WINDOW}'`);
    return rowCount ?? 0;
  }

  /** Queues a final state for the next batch. */
  record(record: InvocationRecord): void {
    this.batch.push(record);
    this.timer ??= setTimeout(() => void this.flush(), this.flushDelayMs);
  }

  /**
   * Writes the batch. If PostgreSQL does not take it, the records are kept (before those that
   * came meanwhile) and written again after a backoff, so an outage loses no record; past
   * `maxBuffered` the oldest are dropped, and each drop is reported.
   */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const rows = this.batch;
    this.batch = [];
    if (rows.length === 0) return;
    this.flushing = this.upsert(rows).then(
      () => {
        this.retryMs = 0;
      },
      (error: unknown) => {
        this.onError(error);
        this.batch = [...rows, ...this.batch];
        const over = this.batch.length - this.maxBuffered;
        if (over > 0) {
          this.batch.splice(0, over);
          this.onError(new Error(`${over} invocation records dropped: PostgreSQL has not taken them and ${this.maxBuffered} are kept at most`));
        }
        this.retryMs = Math.min(MAX_RETRY_MS, Math.max(FIRST_RETRY_MS, this.retryMs * 2));
        clearTimeout(this.timer);
        // Unref'd: a process stopping while PostgreSQL is away is not held open by the retry.
        this.timer = setTimeout(() => void this.flush(), this.retryMs).unref();
      },
    );
    await this.flushing;
  }

  /** Records waiting to be written (while PostgreSQL is away, those kept for the next try). */
  get buffered(): number {
    return this.batch.length;
  }

  /** Puts a finished call back to `queued` as a first attempt of `version` (a re-driven dead letter), with its event. */
  async requeue(id: string, version: number, event: unknown): Promise<void> {
    await this.db.query(
      `UPDATE invocations SET status = 'queued', error = NULL, result = NULL, finished_at = NULL, function_version = $2, event = $3, attempt = 1, updated_at = now()
       WHERE id = $1`,
      [id, version, jsonForPostgres(event ?? null)],
    );
  }

  async get(id: string): Promise<InvocationRecord | undefined> {
    const { rows } = await this.db.query(
      'SELECT id, function_name, tenant, caller_key_id, function_version, async, status, result, error, cold, worker_id, duration_ms, attempt FROM invocations WHERE id = $1',
      [id],
    );
    const row = rows[0] as Record<string, unknown> | undefined;
    if (!row) return undefined;
    const record: InvocationRecord = {
      id: row.id as string,
      functionName: row.function_name as string,
      functionVersion: row.function_version as number,
      async: row.async as boolean,
      status: row.status as InvocationStatus,
    };
    if (row.tenant !== null) record.tenant = row.tenant as string;
    if (row.caller_key_id !== null) record.callerKeyId = row.caller_key_id as string;
    if (row.result !== null) record.result = row.result;
    if (row.error !== null) record.error = row.error as ErrorBody;
    if (row.cold !== null) record.cold = row.cold as boolean;
    if (row.worker_id !== null) record.workerId = row.worker_id as string;
    if (row.duration_ms !== null) record.durationMs = row.duration_ms as number;
    // Which attempt an async call is at (or ended on): retries, and runs lost with their node, count.
    if (record.async && row.attempt !== null) record.attempt = row.attempt as number;
    return record;
  }

  private row(r: InvocationRecord): Row {
    const final = FINAL.has(r.status);
    return [
      r.id,
      r.functionName,
      r.tenant ?? null,
      r.callerKeyId ?? null,
      r.functionVersion,
      r.async,
      r.status,
      r.result === undefined ? null : jsonForPostgres(r.result),
      r.error === undefined ? null : jsonForPostgres(r.error),
      r.cold ?? null,
      r.workerId ?? null,
      r.durationMs ?? null,
      final ? new Date() : null,
      r.event === undefined || final ? null : jsonForPostgres(r.event ?? null),
      r.attempt ?? null,
    ];
  }

  /** Rows written (a row left as it was is not counted). */
  private async upsert(records: InvocationRecord[]): Promise<number> {
    // Last write per id wins within a batch; a multi-row upsert may not touch one row twice.
    const byId = new Map(records.map((r) => [r.id, r]));
    const rows = [...byId.values()].map((r) => this.row(r));
    const size = (row: Row): number => row.reduce<number>((sum, value) => sum + (typeof value === 'string' ? value.length : 8), 0);
    let written = 0;
    for (const chunk of chunked(rows, ROWS_PER_STATEMENT, BYTES_PER_STATEMENT, size)) written += await this.upsertRows(chunk);
    return written;
  }

  private async upsertRows(rows: Row[], client: Database | PoolClient = this.db): Promise<number> {
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const row of rows) {
      const base = values.length;
      values.push(...row);
      tuples.push(`(${COLUMNS.map((_, i) => `$${base + i + 1}`).join(', ')})`);
    }
    // The event stays until the call ends; a write of an earlier attempt (a `running` batched
    // before a retry was queued) leaves a later one alone.
    const { rowCount } = await client.query(
      `INSERT INTO invocations (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}
       ON CONFLICT (id) DO UPDATE SET caller_key_id = coalesce(invocations.caller_key_id, EXCLUDED.caller_key_id), status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
         cold = EXCLUDED.cold, worker_id = EXCLUDED.worker_id, duration_ms = EXCLUDED.duration_ms, finished_at = EXCLUDED.finished_at,
         event = CASE WHEN EXCLUDED.finished_at IS NULL THEN coalesce(EXCLUDED.event, invocations.event) END,
         attempt = coalesce(EXCLUDED.attempt, invocations.attempt), updated_at = now()
       WHERE invocations.status NOT IN ('succeeded', 'failed')
         AND (EXCLUDED.attempt IS NULL OR invocations.attempt IS NULL OR EXCLUDED.attempt >= invocations.attempt)`,
      values,
    );
    return rowCount ?? 0;
  }
}
