/**
 * PostgreSQL access: one pool per process, every connection pinned to Skiff's schema, and the
 * migrations that bring that schema up to date.
 */
import pg from 'pg';
import type { DatabaseClientConfig } from '../config.js';
import type { Logger } from '../log.js';
import { OutageLog } from '../outage-log.js';
import { MIGRATIONS } from './migrations.js';

export type Database = pg.Pool;

export interface DatabaseOptions {
  /**
   * Timeouts (config.databaseClient). Without them a pool waits as long as PostgreSQL takes: for
   * one-off tools and migrations, never for a component serving calls.
   */
  timeouts?: DatabaseClientConfig;
  /** Where the pool's errors go (rate-limited: infra/outage-log.ts). */
  log?: Logger;
  /** Shown in pg_stat_activity (`skiff-<component>`). */
  component?: string;
}

/**
 * A pool whose connections use `schema`. With `timeouts`: getting a connection (a new one, or a
 * free one while all are busy) fails after `connectTimeoutMs`; a statement is cancelled by the
 * server after `queryTimeoutMs`, and the client gives up a second later if the server does not
 * answer at all. An idle connection's error (the server restarting) never crashes the process:
 * it is logged, the connection is dropped, and the next query connects again.
 */
export function openDatabase(url: string, schema: string, max = 10, options: DatabaseOptions = {}): Database {
  const { timeouts } = options;
  const pool = new pg.Pool({
    connectionString: url,
    max,
    options: `-c search_path=${schema}`,
    keepAlive: true,
    ...(options.component === undefined ? {} : { application_name: `skiff-${options.component}` }),
    ...(timeouts === undefined
      ? {}
      : {
          connectionTimeoutMillis: timeouts.connectTimeoutMs,
          ...(timeouts.queryTimeoutMs > 0 ? { statement_timeout: timeouts.queryTimeoutMs, query_timeout: timeouts.queryTimeoutMs + 1000 } : {}),
        }),
  });
  const outage = options.log ? new OutageLog(options.log.child({ postgres: options.component ?? 'pool' }), 'postgres connection') : undefined;
  pool.on('error', (error) => outage?.error(error));
  pool.on('connect', () => outage?.recovered());
  return pool;
}

/** Runs `work` in one transaction on one connection: committed if it returns, rolled back if it throws. */
export async function inTransaction<T>(db: Database, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

/** Applies pending migrations. Safe to run from several processes at once (advisory lock). */
export async function migrate(db: Database, schema: string): Promise<number[]> {
  const client = await db.connect();
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`skiff-migrate-${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set((await client.query<{ id: number }>(`SELECT id FROM ${schema}.schema_migrations`)).rows.map((r) => r.id));
    for (const migration of MIGRATIONS) {
      if (done.has(migration.id)) continue;
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL search_path = ${schema}`);
        await client.query(migration.sql);
        await client.query(`INSERT INTO ${schema}.schema_migrations (id, name) VALUES ($1, $2)`, [migration.id, migration.name]);
        await client.query('COMMIT');
        applied.push(migration.id);
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${migration.id} (${migration.name}) failed`, { cause: error });
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`skiff-migrate-${schema}`]).catch(() => undefined);
    client.release();
  }
  return applied;
}
