/**
 * Read-only views over the `invocations` table for operators (the dashboard at /ui and
 * GET /v1/stats/...): per-function call counts, errors, latency percentiles and cold-start
 * ratios over a recent window, the same per minute, and a function's latest invocations. Every
 * number is computed in PostgreSQL (percentile_cont), on the (function_name, created_at) index.
 *
 * Time is PostgreSQL's clock, and a call counts in the window (or minute) of its record's
 * `created_at`: when a synchronous call's final state was written (the call's end), or when an
 * asynchronous call was queued.
 */
import type { ErrorBody } from '../errors.js';
import type { Database } from './database.js';
import type { InvocationStatus } from './invocation-records.js';

/** The longest window the statistics look back over: one day. */
export const MAX_WINDOW_MINUTES = 1440;
/** The most invocations one listing returns. */
export const MAX_INVOCATIONS = 500;

export interface FunctionStats {
  name: string;
  /** Calls recorded in the window, whatever their state. */
  calls: number;
  /** Calls that ended `failed`. */
  errors: number;
  /** calls / windowMinutes */
  callsPerMinute: number;
  /** Median and 99th percentile of finished calls' durations (null: no finished call). */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Calls that started an instance, of those whose cold-or-warm is known. */
  coldStarts: number;
  /** coldStarts / calls whose cold-or-warm is known (null: none known). */
  coldStartRatio: number | null;
  /** The latest call in the window (ISO), or null. */
  lastCallAt: string | null;
}

export interface MinuteStats {
  /** Start of the minute (ISO). */
  minute: string;
  calls: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
  coldStarts: number;
}

export interface InvocationSummary {
  id: string;
  version: number;
  async: boolean;
  status: InvocationStatus;
  /** Whether the call started an instance; null when it never reached one. */
  cold: boolean | null;
  durationMs: number | null;
  workerId: string | null;
  createdAt: string;
  finishedAt: string | null;
  /** The error's code and message for a failed call. */
  error: { code: string; message: string } | null;
}

/** Aggregates shared by the window and per-minute queries, over rows aliased `i`. */
const AGGREGATES = `count(i.id)::int AS calls,
  (count(i.id) FILTER (WHERE i.status = 'failed'))::int AS errors,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY i.duration_ms) AS p50,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY i.duration_ms) AS p99,
  (count(i.id) FILTER (WHERE i.cold))::int AS cold,
  count(i.cold)::int AS cold_known`;

const round = (ms: unknown): number | null => (ms === null || ms === undefined ? null : Math.round(Number(ms) * 100) / 100);

export class InvocationStats {
  constructor(private readonly db: Database) {}

  /**
   * Every deployed function (or only `name`: none if it does not exist), with its calls of the
   * last `windowMinutes` (zeros when it had none), by name.
   */
  async functions(windowMinutes: number, name?: string, tenant?: string): Promise<FunctionStats[]> {
    // Only calls made while the function was its tenant's: a name taken over brings no old calls.
    const { rows } = await this.db.query(
      `SELECT f.name, ${AGGREGATES}, max(i.created_at) AS last_call
       FROM functions f
       LEFT JOIN invocations i ON i.function_name = f.name AND i.tenant = f.tenant AND i.created_at > now() - make_interval(mins => $1::int)
       WHERE ($2::text IS NULL OR f.name = $2) AND ($3::text IS NULL OR f.tenant = $3)
       GROUP BY f.name ORDER BY f.name`,
      [windowMinutes, name ?? null, tenant ?? null],
    );
    return (rows as Array<Record<string, unknown>>).map((row) => {
      const calls = row.calls as number;
      const coldKnown = row.cold_known as number;
      return {
        name: row.name as string,
        calls,
        errors: row.errors as number,
        callsPerMinute: Math.round((calls / windowMinutes) * 100) / 100,
        p50Ms: round(row.p50),
        p99Ms: round(row.p99),
        coldStarts: row.cold as number,
        coldStartRatio: coldKnown === 0 ? null : Math.round(((row.cold as number) / coldKnown) * 1000) / 1000,
        lastCallAt: row.last_call === null ? null : (row.last_call as Date).toISOString(),
      };
    });
  }

  /** One function's calls per minute: `windowMinutes` minutes, oldest first, the current minute last; empty minutes included. */
  async perMinute(name: string, tenant: string, windowMinutes: number): Promise<MinuteStats[]> {
    const { rows } = await this.db.query(
      `WITH minutes AS (
         SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => $2::int - 1), date_trunc('minute', now()), interval '1 minute') AS minute
       )
       SELECT m.minute, ${AGGREGATES}
       FROM minutes m
       LEFT JOIN invocations i ON i.function_name = $1 AND i.tenant = $3 AND i.created_at >= m.minute AND i.created_at < m.minute + interval '1 minute'
       GROUP BY m.minute ORDER BY m.minute`,
      [name, windowMinutes, tenant],
    );
    return (rows as Array<Record<string, unknown>>).map((row) => ({
      minute: (row.minute as Date).toISOString(),
      calls: row.calls as number,
      errors: row.errors as number,
      p50Ms: round(row.p50),
      p99Ms: round(row.p99),
      coldStarts: row.cold as number,
    }));
  }

  /** A function's latest `limit` invocations, newest first. */
  async recent(name: string, tenant: string, limit: number): Promise<InvocationSummary[]> {
    const { rows } = await this.db.query(
      `SELECT id, function_version, async, status, cold, duration_ms, worker_id, created_at, finished_at, error
       FROM invocations WHERE function_name = $1 AND tenant = $3 ORDER BY created_at DESC, id LIMIT $2`,
      [name, limit, tenant],
    );
    return (rows as Array<Record<string, unknown>>).map((row) => {
      const error = row.error as ErrorBody | null;
      return {
        id: row.id as string,
        version: row.function_version as number,
        async: row.async as boolean,
        status: row.status as InvocationStatus,
        cold: row.cold as boolean | null,
        durationMs: round(row.duration_ms),
        workerId: row.worker_id as string | null,
        createdAt: (row.created_at as Date).toISOString(),
        finishedAt: row.finished_at === null ? null : (row.finished_at as Date).toISOString(),
        error: error === null ? null : { code: String(error.code), message: String(error.message) },
      };
    });
  }

  /** The function name of each version id that exists (heartbeats name instances by version id). */
  async versionNames(versionIds: readonly string[]): Promise<Map<string, string>> {
    if (versionIds.length === 0) return new Map();
    const { rows } = await this.db.query('SELECT version_id, name FROM function_versions WHERE version_id = ANY($1::text[])', [versionIds]);
    return new Map((rows as Array<{ version_id: string; name: string }>).map((r) => [r.version_id, r.name]));
  }
}
