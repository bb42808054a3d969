/**
 * Who changed what: deploys, deletes, rollbacks, keys made and revoked, tenants made, changed and
 * deleted, each with the key and tenant that did it. Read with GET /v1/audit (admin: all, owner:
 * its tenant). Kept like invocation records: the retention sweep prunes old events.
 */
import type { Database } from './database.js';

export type AuditAction =
  'function.deploy' | 'function.rollback' | 'function.delete' | 'key.create' | 'key.revoke' | 'tenant.create' | 'tenant.update' | 'tenant.delete';

export interface AuditEvent {
  id: number;
  at: string;
  /** The key that acted (null for the bring-up's own actions). */
  keyId: string | null;
  /** The tenant the action was about (a function's or key's tenant). */
  tenant: string;
  action: AuditAction;
  /** What it acted on: a function name, a key id, a tenant name. */
  target: string;
  detail: Record<string, unknown>;
}

export interface AuditQuery {
  tenant?: string;
  /** Events with an id below this one (paging back in time). */
  before?: number;
  limit: number;
}

export class AuditLog {
  constructor(private readonly db: Database) {}

  async add(event: Omit<AuditEvent, 'id' | 'at'>): Promise<void> {
    await this.db.query('INSERT INTO audit_events (key_id, tenant, action, target, detail) VALUES ($1, $2, $3, $4, $5)', [
      event.keyId,
      event.tenant,
      event.action,
      event.target,
      JSON.stringify(event.detail),
    ]);
  }

  /** Newest first. */
  async list(query: AuditQuery): Promise<AuditEvent[]> {
    const { rows } = await this.db.query<{
      id: string;
      at: Date;
      key_id: string | null;
      tenant: string;
      action: AuditAction;
      target: string;
      detail: Record<string, unknown>;
    }>(
      `SELECT id, at, key_id, tenant, action, target, detail FROM audit_events
       WHERE ($1::text IS NULL OR tenant = $1) AND ($2::bigint IS NULL OR id < $2)
       ORDER BY id DESC LIMIT $3`,
      [query.tenant ?? null, query.before ?? null, query.limit],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      at: r.at.toISOString(),
      keyId: r.key_id,
      tenant: r.tenant,
      action: r.action,
      target: r.target,
      detail: r.detail,
    }));
  }
}
