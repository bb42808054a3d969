/**
 * Functions and their immutable versions in PostgreSQL. A deploy writes the code blob, the
 * function row and a new version row in one transaction: either all of it exists or none does.
 * A rollback points the function back at an older version without making a new one.
 */
import { nanoid } from 'nanoid';
import { SkiffError } from '../errors.js';
import { inTransaction, type Database } from './database.js';
import type { Cors, FunctionVersion, InvokeMode, Runtime } from '../functions/version.js';
import type { Schedule } from '../schedules/expression.js';

export interface DeployInput {
  name: string;
  /** The tenant the function lands in; a name another tenant owns is NameTaken. */
  tenant: string;
  /** The tenant's quotas that a deploy checks: functions it may own, versions kept per function. */
  limits: { maxFunctions: number; maxVersionsPerFunction: number };
  runtime: Runtime;
  handler: string;
  memoryMb: number;
  timeoutMs: number;
  concurrency: number;
  idleTimeoutMs: number;
  minWarm: number;
  maxInstances: number;
  auth: 'none' | 'key';
  network: 'none' | 'egress';
  idempotent: boolean;
  invokeMode: InvokeMode;
  /** Async settings; absent: the platform's defaults when the call runs. */
  maximumRetryAttempts?: number;
  maximumEventAgeSeconds?: number;
  env: Record<string, string>;
  /** Validated by the caller (infra/schedules/expression.ts; the gateway's CORS checks). */
  schedules: readonly Schedule[];
  cors: Cors | null;
  /** The uploaded zip, for zip deploys; null when the function was deployed by image reference. */
  code: { zip: Buffer; sha256: string } | null;
  /** The image the version runs, by digest (gateway/images/function-images.ts). */
  image: string;
}

export interface FunctionInfo extends FunctionVersion {
  codeSize: number;
  createdAt: string;
  updatedAt: string;
}

const VERSION_COLUMNS = `v.version_id, v.name, f.tenant, v.version, v.runtime, v.handler, v.memory_mb, v.timeout_ms, v.concurrency,
  v.idle_timeout_ms, v.min_warm, v.max_instances, v.auth, v.network, v.idempotent, v.invoke_mode, v.maximum_retry_attempts, v.maximum_event_age_seconds, v.env, v.schedules, v.cors, v.code_sha256, v.image, coalesce(c.size_bytes, 0) AS size_bytes, f.created_at, v.created_at AS updated_at`;

const CURRENT = `SELECT ${VERSION_COLUMNS} FROM functions f
  JOIN function_versions v ON v.name = f.name AND v.version = f.current_version
  LEFT JOIN code_blobs c ON c.sha256 = v.code_sha256`;

/** One version as GET /v1/functions/:name/versions lists it: the version, without its env. */
export type VersionSummary = Omit<FunctionInfo, 'versionId' | 'name' | 'tenant' | 'env' | 'codeSize' | 'updatedAt'> & {
  /** Whether calls run this version now. */
  current: boolean;
};

export type RollbackResult = { ok: true; info: FunctionInfo } | { ok: false; missing: 'function' | 'version' };

export interface DeployResult {
  info: FunctionInfo;
  /** Old versions removed to keep the tenant's maxVersionsPerFunction. */
  prunedVersions: number;
}

export class FunctionStore {
  constructor(private readonly db: Database) {}

  async deploy(input: DeployInput): Promise<DeployResult> {
    return inTransaction(this.db, async (client) => {
      // The tenant's row lock serializes its deploys, so two new functions cannot both pass the
      // maxFunctions check; a tenant that does not exist is the caller's mistake.
      const tenant = await client.query('SELECT 1 FROM tenants WHERE name = $1 FOR UPDATE', [input.tenant]);
      if ((tenant.rowCount ?? 0) === 0) throw new SkiffError('InvalidRequest', `tenant ${input.tenant} does not exist`, { field: 'tenant' });
      const existing = await client.query<{ tenant: string }>('SELECT tenant FROM functions WHERE name = $1', [input.name]);
      const owner = existing.rows[0]?.tenant;
      // Reveals only that the name is taken, not by whom.
      if (owner !== undefined && owner !== input.tenant)
        throw new SkiffError('NameTaken', `the function name ${input.name} is taken; choose another`, { field: 'name' });
      if (owner === undefined) {
        const { rows: owned } = await client.query<{ n: string }>('SELECT count(*) AS n FROM functions WHERE tenant = $1', [input.tenant]);
        if (Number(owned[0]?.n ?? 0) >= input.limits.maxFunctions) {
          throw new SkiffError('QuotaExceeded', `tenant ${input.tenant} owns ${input.limits.maxFunctions} functions, its maxFunctions quota`);
        }
      }
      if (input.code) {
        await client.query('INSERT INTO code_blobs (sha256, zip, size_bytes) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING', [
          input.code.sha256,
          input.code.zip,
          input.code.zip.length,
        ]);
      }
      // The row lock serializes concurrent deploys (and rollbacks) of one name, so versions never
      // collide. The new version is one past the highest there is, not past the current one: after
      // a rollback the current version is an older one. The version query is a statement of its
      // own so that it runs after the lock is held and sees every version committed before it.
      // ON CONFLICT: a concurrent first deploy of the same name by another tenant loses here.
      const { rows: claimed } = await client.query(
        `INSERT INTO functions (name, current_version, tenant) VALUES ($1, 0, $2)
         ON CONFLICT (name) DO UPDATE SET updated_at = now() WHERE functions.tenant = EXCLUDED.tenant RETURNING name`,
        [input.name, input.tenant],
      );
      if (claimed.length === 0) throw new SkiffError('NameTaken', `the function name ${input.name} is taken; choose another`, { field: 'name' });
      const { rows } = await client.query<{ version: number }>(
        `UPDATE functions SET current_version = (SELECT coalesce(max(version), 0) + 1 FROM function_versions WHERE name = $1)
         WHERE name = $1 RETURNING current_version AS version`,
        [input.name],
      );
      const version = rows[0]?.version;
      if (version === undefined) throw new Error('deploy returned no version');
      await client.query(
        `INSERT INTO function_versions (version_id, name, version, runtime, handler, memory_mb, timeout_ms, concurrency,
           idle_timeout_ms, min_warm, max_instances, auth, network, idempotent, env, code_sha256, image, maximum_retry_attempts, maximum_event_age_seconds,
           schedules, cors, invoke_mode)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
        [
          nanoid(),
          input.name,
          version,
          input.runtime,
          input.handler,
          input.memoryMb,
          input.timeoutMs,
          input.concurrency,
          input.idleTimeoutMs,
          input.minWarm,
          input.maxInstances,
          input.auth,
          input.network,
          input.idempotent,
          JSON.stringify(input.env),
          input.code?.sha256 ?? null,
          input.image,
          input.maximumRetryAttempts ?? null,
          input.maximumEventAgeSeconds ?? null,
          JSON.stringify(input.schedules),
          input.cors === null ? null : JSON.stringify(input.cors),
          input.invokeMode,
        ],
      );
      // Versions past the tenant's bound go, oldest first; the current one never does.
      const pruned = await client.query(
        `DELETE FROM function_versions WHERE name = $1 AND version <> $2 AND version NOT IN
           (SELECT version FROM function_versions WHERE name = $1 ORDER BY version DESC LIMIT $3)`,
        [input.name, version, input.limits.maxVersionsPerFunction],
      );
      const prunedVersions = pruned.rowCount ?? 0;
      if (prunedVersions > 0) {
        await client.query('DELETE FROM code_blobs c WHERE NOT EXISTS (SELECT 1 FROM function_versions v WHERE v.code_sha256 = c.sha256)');
      }
      // The version this deploy made, read before the commit: a concurrent deploy committing
      // right after may make its own version current before this one answers.
      const { rows: made } = await client.query(
        `SELECT ${VERSION_COLUMNS} FROM functions f JOIN function_versions v ON v.name = f.name
         LEFT JOIN code_blobs c ON c.sha256 = v.code_sha256 WHERE f.name = $1 AND v.version = $2`,
        [input.name, version],
      );
      if (!made[0]) throw new SkiffError('Internal', `function ${input.name} has no version ${version} after deploy`);
      return { info: toInfo(made[0] as Row), prunedVersions };
    });
  }

  /** The current version of `name`, or undefined. On the invocation path: one indexed query. */
  async get(name: string): Promise<FunctionInfo | undefined> {
    const { rows } = await this.db.query({ name: 'skiff-current-function', text: `${CURRENT} WHERE f.name = $1`, values: [name] });
    return rows[0] ? toInfo(rows[0] as Row) : undefined;
  }

  /** Every function, or a tenant's. */
  async list(tenant?: string): Promise<FunctionInfo[]> {
    const { rows } =
      tenant === undefined
        ? await this.db.query(`${CURRENT} ORDER BY f.name`)
        : await this.db.query(`${CURRENT} WHERE f.tenant = $1 ORDER BY f.name`, [tenant]);
    return (rows as Row[]).map(toInfo);
  }

  /** Version `version` of `name` (current or not), or undefined if it is gone. */
  async version(name: string, version: number): Promise<FunctionInfo | undefined> {
    const { rows } = await this.db.query(
      `SELECT ${VERSION_COLUMNS} FROM functions f JOIN function_versions v ON v.name = f.name
       LEFT JOIN code_blobs c ON c.sha256 = v.code_sha256 WHERE f.name = $1 AND v.version = $2`,
      [name, version],
    );
    return rows[0] ? toInfo(rows[0] as Row) : undefined;
  }

  /** Current versions that keep warm instances without calls (minWarm > 0). */
  async keptWarm(): Promise<FunctionInfo[]> {
    const { rows } = await this.db.query(`${CURRENT} WHERE v.min_warm > 0 ORDER BY f.name`);
    return (rows as Row[]).map(toInfo);
  }

  /** Current versions that have schedules: what the job schedulers in Redis must match. */
  async scheduled(): Promise<FunctionInfo[]> {
    const { rows } = await this.db.query(`${CURRENT} WHERE v.schedules <> '[]' ORDER BY f.name`);
    return (rows as Row[]).map(toInfo);
  }

  /** Every version of `name`, newest first, marking the current one; undefined if there is no such function. */
  async versions(name: string): Promise<VersionSummary[] | undefined> {
    const { rows } = await this.db.query(
      `SELECT ${VERSION_COLUMNS}, v.version = f.current_version AS current FROM functions f
       JOIN function_versions v ON v.name = f.name
       LEFT JOIN code_blobs c ON c.sha256 = v.code_sha256
       WHERE f.name = $1 ORDER BY v.version DESC`,
      [name],
    );
    // A function always has a version: none means no function.
    if (rows.length === 0) return undefined;
    return (rows as Array<Row & { current: boolean }>).map((row) => {
      const { versionId: _id, name: _name, tenant: _tenant, env: _env, codeSize: _size, updatedAt: _updated, ...summary } = toInfo(row);
      return { ...summary, current: row.current };
    });
  }

  /**
   * Makes an existing version of `name` its current one again. Versions are immutable and none is
   * made: the function points back at `version`, and the next deploy still gets a new number.
   */
  async rollback(name: string, version: number): Promise<RollbackResult> {
    return inTransaction(this.db, async (client) => {
      // Takes the function's row lock, as a deploy does, so the answer is the version it set.
      const { rowCount } = await client.query(
        `UPDATE functions f SET current_version = $2, updated_at = now()
         WHERE f.name = $1 AND EXISTS (SELECT 1 FROM function_versions v WHERE v.name = $1 AND v.version = $2)`,
        [name, version],
      );
      if ((rowCount ?? 0) === 0) {
        const { rowCount: exists } = await client.query('SELECT 1 FROM functions WHERE name = $1', [name]);
        return { ok: false, missing: (exists ?? 0) > 0 ? 'version' : 'function' };
      }
      const { rows } = await client.query(`${CURRENT} WHERE f.name = $1`, [name]);
      return rows[0] ? { ok: true, info: toInfo(rows[0] as Row) } : { ok: false, missing: 'function' };
    });
  }

  /** Deletes the function, its versions, and code no other version uses. False if there was none. */
  async delete(name: string): Promise<boolean> {
    return inTransaction(this.db, async (client) => {
      const { rowCount } = await client.query('DELETE FROM functions WHERE name = $1', [name]);
      await client.query('DELETE FROM function_logs WHERE function_name = $1', [name]);
      // A name may be taken by another tenant next: nothing of this function may pass to it.
      await client.query('DELETE FROM dead_letters WHERE function_name = $1', [name]);
      await client.query('DELETE FROM code_blobs c WHERE NOT EXISTS (SELECT 1 FROM function_versions v WHERE v.code_sha256 = c.sha256)');
      return (rowCount ?? 0) > 0;
    });
  }
}

interface Row {
  version_id: string;
  name: string;
  tenant: string;
  version: number;
  runtime: Runtime;
  handler: string;
  memory_mb: number;
  timeout_ms: number;
  concurrency: number;
  idle_timeout_ms: number;
  min_warm: number;
  max_instances: number;
  auth: 'none' | 'key';
  network: 'none' | 'egress';
  idempotent: boolean;
  invoke_mode: InvokeMode;
  maximum_retry_attempts: number | null;
  maximum_event_age_seconds: number | null;
  env: Record<string, string>;
  schedules: Schedule[];
  cors: Cors | null;
  code_sha256: string | null;
  image: string | null;
  size_bytes: number;
  created_at: Date;
  updated_at: Date;
}

/** The version as it travels in jobs: without the metadata only the API shows. */
export function versionOf(info: FunctionInfo): FunctionVersion {
  const { codeSize: _codeSize, createdAt: _createdAt, updatedAt: _updatedAt, ...version } = info;
  return version;
}

function toInfo(row: Row): FunctionInfo {
  return {
    versionId: row.version_id,
    name: row.name,
    tenant: row.tenant,
    version: row.version,
    runtime: row.runtime,
    handler: row.handler,
    memoryMb: row.memory_mb,
    timeoutMs: row.timeout_ms,
    concurrency: row.concurrency,
    idleTimeoutMs: row.idle_timeout_ms,
    minWarm: row.min_warm,
    maxInstances: row.max_instances,
    auth: row.auth,
    network: row.network,
    idempotent: row.idempotent,
    invokeMode: row.invoke_mode,
    ...(row.maximum_retry_attempts === null ? {} : { maximumRetryAttempts: row.maximum_retry_attempts }),
    ...(row.maximum_event_age_seconds === null ? {} : { maximumEventAgeSeconds: row.maximum_event_age_seconds }),
    env: row.env,
    schedules: row.schedules,
    cors: row.cors,
    codeSha256: row.code_sha256,
    // Versions deployed before images existed have none; the worker refuses them with a clear error.
    image: row.image ?? '',
    codeSize: row.size_bytes,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
