/**
 * Invocation records in PostgreSQL: what each call was, how it ended. Final states are written in
 * batches off the call path (one multi-row upsert every few ms), so recording costs the caller
 * nothing; an asynchronous call's `queued` row is written before the gateway answers 202.
 */
import type { ErrorBody } from '../errors.js';
import { chunked, rowsPerStatement } from './chunks.js';
import type { Database } from './database.js';

export type InvocationStatus = 'queued' | 'running' | 'succeeded' | 'failed';

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
}

/** PostgreSQL's jsonb and text reject U+0000; a handler may return it. */
export function jsonForPostgres(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? v.replaceAll('\u0000', '\uFFFD') : v));
}

const COLUMNS = ['id', 'function_name', 'tenant', 'caller_key_id', 'function_version', 'async', 'status', 'result', 'error', 'cold', 'worker_id', 'duration_ms', 'finished_at'];
/** A batch of any size goes in statements under PostgreSQL's parameter limit, and of moderate size. */
const ROWS_PER_STATEMENT = rowsPerStatement(COLUMNS.length);
const BYTES_PER_STATEMENT = 8 * 1024 * 1024;

type Row = unknown[];

export class InvocationRecords {
  private batch: InvocationRecord[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly onError: (error: unknown) => void,
    private readonly flushDelayMs = 20,
  ) {}

  /** Writes now: used for the `queued` row an async call's 202 depends on. */
  async write(record: InvocationRecord): Promise<void> {
    await this.upsert([record]);
  }

  /** Queues a final state for the next batch. */
  record(record: InvocationRecord): void {
    this.batch.push(record);
    this.timer ??= setTimeout(() => void this.flush(), this.flushDelayMs);
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const rows = this.batch;
    this.batch = [];
    if (rows.length === 0) return;
    this.flushing = this.upsert(rows).catch(this.onError);
    await this.flushing;
  }

  /** Puts a finished call back to `queued` (a re-driven dead letter). */
  async requeue(id: string): Promise<void> {
    await this.db.query("UPDATE invocations SET status = 'queued', error = NULL, result = NULL, finished_at = NULL WHERE id = $1", [id]);
  }

  async get(id: string): Promise<InvocationRecord | undefined> {
    const { rows } = await this.db.query(
      'SELECT id, function_name, tenant, caller_key_id, function_version, async, status, result, error, cold, worker_id, duration_ms FROM invocations WHERE id = $1',
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
    return record;
  }

  private async upsert(records: InvocationRecord[]): Promise<void> {
    // Last write per id wins within a batch; a multi-row upsert may not touch one row twice.
    const byId = new Map(records.map((r) => [r.id, r]));
    const rows: Row[] = [];
    for (const r of byId.values()) {
      const final = r.status === 'succeeded' || r.status === 'failed';
      rows.push([
        r.id, r.functionName, r.tenant ?? null, r.callerKeyId ?? null, r.functionVersion, r.async, r.status,
        r.result === undefined ? null : jsonForPostgres(r.result),
        r.error === undefined ? null : jsonForPostgres(r.error),
        r.cold ?? null, r.workerId ?? null, r.durationMs ?? null, final ? new Date() : null,
      ]);
    }
    const size = (row: Row): number => row.reduce<number>((sum, value) => sum + (typeof value === 'string' ? value.length : 8), 0);
    for (const chunk of chunked(rows, ROWS_PER_STATEMENT, BYTES_PER_STATEMENT, size)) await this.upsertRows(chunk);
  }

  private async upsertRows(rows: Row[]): Promise<void> {
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const row of rows) {
      const base = values.length;
      values.push(...row);
      tuples.push(`(${COLUMNS.map((_, i) => `$${base + i + 1}`).join(', ')})`);
    }
    await this.db.query(
      `INSERT INTO invocations (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}
       ON CONFLICT (id) DO UPDATE SET caller_key_id = coalesce(invocations.caller_key_id, EXCLUDED.caller_key_id), status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
         cold = EXCLUDED.cold, worker_id = EXCLUDED.worker_id, duration_ms = EXCLUDED.duration_ms, finished_at = EXCLUDED.finished_at
       WHERE invocations.status NOT IN ('succeeded', 'failed')`,
      values,
    );
  }
}
