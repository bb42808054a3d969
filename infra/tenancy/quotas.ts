/**
 * A tenant's quotas: what it may use of the shared platform. A tenant stores only the values an
 * admin set for it (PATCH /v1/tenants/:name); every other value is the platform's default
 * (infra/config.ts, `tenantDefaults`), so changing a default changes it for every tenant that
 * did not set its own.
 */
export interface TenantQuotas {
  /** Calls per second to the tenant's functions, counted across all gateways; over it, 429. */
  callsPerSecond: number;
  /** Instances (busy and idle) of the tenant's functions at once. */
  maxInstances: number;
  /** Memory of those instances together, in MiB. */
  maxMemoryMb: number;
  /** Functions the tenant may own; a deploy past it is 403 QuotaExceeded. */
  maxFunctions: number;
  /** Log lines kept for the tenant's functions; the oldest are pruned first. */
  maxLogLines: number;
  /** Invocation records kept for the tenant's functions; the oldest are pruned first. */
  maxInvocationRecords: number;
  /** Versions kept per function; the oldest (never the current one) are pruned first. */
  maxVersionsPerFunction: number;
}

export const QUOTA_NAMES = [
  'callsPerSecond',
  'maxInstances',
  'maxMemoryMb',
  'maxFunctions',
  'maxLogLines',
  'maxInvocationRecords',
  'maxVersionsPerFunction',
] as const satisfies ReadonlyArray<keyof TenantQuotas>;

/** The effective quotas: the tenant's own values over the platform's defaults. */
export function effectiveQuotas(defaults: Readonly<TenantQuotas>, own: Partial<TenantQuotas>): TenantQuotas {
  const quotas = { ...defaults };
  for (const name of QUOTA_NAMES) {
    const value = own[name];
    if (typeof value === 'number') quotas[name] = value;
  }
  return quotas;
}

/** The tenant that today's functions and keys were moved into, and that admin keys deploy into by default. */
export const DEFAULT_TENANT = 'default';
export const TENANT_NAME = '^[a-z][a-z0-9-]{0,62}$';
