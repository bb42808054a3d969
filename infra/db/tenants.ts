/**
 * Tenants in PostgreSQL: a tenant owns functions, keys and quotas. A tenant stores only the quotas
 * an admin set for it; the effective ones add the platform's defaults (infra/tenancy/quotas.ts).
 */
import { SkiffError } from '../errors.js';
import { effectiveQuotas, type TenantQuotas } from '../tenancy/quotas.js';
import { inTransaction, type Database } from './database.js';

export interface TenantInfo {
  name: string;
  /** Effective quotas: the tenant's own values over the defaults. */
  quotas: TenantQuotas;
  /** The values this tenant set itself (the rest follow the defaults). */
  ownQuotas: Partial<TenantQuotas>;
  functions: number;
  createdAt: string;
}

interface Row {
  name: string;
  quotas: Partial<TenantQuotas>;
  created_at: Date;
  functions: string;
}

const SELECT = `SELECT t.name, t.quotas, t.created_at, (SELECT count(*) FROM functions f WHERE f.tenant = t.name) AS functions FROM tenants t`;

export class TenantStore {
  constructor(
    private readonly db: Database,
    private readonly defaults: Readonly<TenantQuotas>,
  ) {}

  /** Makes a tenant; 409 Conflict if the name exists. */
  async create(name: string, quotas: Partial<TenantQuotas> = {}): Promise<TenantInfo> {
    const { rowCount } = await this.db.query('INSERT INTO tenants (name, quotas) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
      name,
      JSON.stringify(quotas),
    ]);
    if ((rowCount ?? 0) === 0) throw new SkiffError('Conflict', `tenant ${name} exists already`, { field: 'name' });
    return this.require(name);
  }

  async get(name: string): Promise<TenantInfo | undefined> {
    const { rows } = await this.db.query<Row>(`${SELECT} WHERE t.name = $1`, [name]);
    return rows[0] ? this.toInfo(rows[0]) : undefined;
  }

  async require(name: string): Promise<TenantInfo> {
    const info = await this.get(name);
    if (!info) throw new SkiffError('NotFound', `tenant ${name} does not exist`);
    return info;
  }

  async list(): Promise<TenantInfo[]> {
    const { rows } = await this.db.query<Row>(`${SELECT} ORDER BY t.name`);
    return rows.map((row) => this.toInfo(row));
  }

  /** Sets some of the tenant's own quotas; a null value goes back to the default. */
  async setQuotas(name: string, changes: Partial<Record<keyof TenantQuotas, number | null>>): Promise<TenantInfo> {
    const set: Record<string, number> = {};
    const unset: string[] = [];
    for (const [quota, value] of Object.entries(changes)) {
      if (value === null) unset.push(quota);
      else if (value !== undefined) set[quota] = value;
    }
    const { rowCount } = await this.db.query('UPDATE tenants SET quotas = (quotas - $3::text[]) || $2::jsonb WHERE name = $1', [
      name,
      JSON.stringify(set),
      unset,
    ]);
    if ((rowCount ?? 0) === 0) throw new SkiffError('NotFound', `tenant ${name} does not exist`);
    return this.require(name);
  }

  /** Deletes the tenant and its keys; 409 while it owns functions, 404 if there is none. */
  async delete(name: string): Promise<void> {
    await inTransaction(this.db, async (client) => {
      // Locks the tenant's row, so no deploy into it commits between the count and the delete.
      const { rows } = await client.query<{ name: string }>('SELECT name FROM tenants WHERE name = $1 FOR UPDATE', [name]);
      if (rows.length === 0) throw new SkiffError('NotFound', `tenant ${name} does not exist`);
      const { rows: owned } = await client.query<{ n: string }>('SELECT count(*) AS n FROM functions WHERE tenant = $1', [name]);
      const count = Number(owned[0]?.n ?? 0);
      if (count > 0) throw new SkiffError('Conflict', `tenant ${name} still owns ${count} function${count === 1 ? '' : 's'}; delete them first`);
      await client.query('DELETE FROM tenants WHERE name = $1', [name]);
    });
  }

  private toInfo(row: Row): TenantInfo {
    return {
      name: row.name,
      quotas: effectiveQuotas(this.defaults, row.quotas),
      ownQuotas: row.quotas,
      functions: Number(row.functions),
      createdAt: row.created_at.toISOString(),
    };
  }
}
