/**
 * Tenants' effective quotas for the call path: read from PostgreSQL at most every few seconds
 * per tenant, so a PATCH of a quota reaches every gateway within that time and a call costs no
 * query. Bounded: tenants not asked for lately are dropped first. While PostgreSQL does not answer,
 * the quotas last read (or the defaults) are used, and asked for again after the TTL.
 */
import type { TenantStore } from '../../infra/db/tenants.js';
import type { TenantQuotas } from '../../infra/tenancy/quotas.js';

const TTL_MS = 5000;
const MAX_ENTRIES = 10_000;

export class TenantQuotaCache {
  private readonly entries = new Map<string, { quotas: TenantQuotas; until: number }>();

  constructor(
    private readonly store: Pick<TenantStore, 'get'>,
    private readonly defaults: Readonly<TenantQuotas>,
  ) {}

  async get(tenant: string): Promise<TenantQuotas> {
    const hit = this.entries.get(tenant);
    if (hit && hit.until > Date.now()) return hit.quotas;
    // A tenant deleted meanwhile owns no functions: its defaults will do for the call in flight.
    // PostgreSQL not answering: the quotas last read (or the defaults) keep calls going.
    const quotas = await this.store.get(tenant).then(
      (info) => info?.quotas ?? { ...this.defaults },
      () => hit?.quotas ?? { ...this.defaults },
    );
    this.entries.delete(tenant);
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(tenant, { quotas, until: Date.now() + TTL_MS });
    return quotas;
  }

  /** Forgets a tenant at once (the gateway that changed its quotas). */
  forget(tenant: string): void {
    this.entries.delete(tenant);
  }
}
