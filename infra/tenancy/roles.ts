/**
 * Who may do what: the roles a key can have and the actions the API's routes perform, as one
 * table. Pure data, so the role × action matrix is read here, tested here, and printed in
 * docs/SECURITY.md; every route names its action (gateway/access.ts refuses a route without one).
 *
 * Roles:
 * - admin: the platform (tenants, workers, images, metrics) and every tenant;
 * - owner: everything in its own tenant, its keys included (never an admin key);
 * - developer: deploy, redeploy, roll back, delete, invoke, read its tenant's functions;
 * - invoker: invoke its tenant's functions, read the records of the calls it made;
 * - viewer: read-only, never env values.
 */
export const ROLES = ['admin', 'owner', 'developer', 'invoker', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const ACTIONS = {
  /** Who the key is: its id, tenant, role and function list (the dashboard and CLI ask). */
  'self:read': ['admin', 'owner', 'developer', 'invoker', 'viewer'],
  /** Create, list, read, change and delete tenants and their quotas. */
  'tenants:manage': ['admin'],
  /** The fleet: list workers, cordon, drain, remove. */
  'workers:manage': ['admin'],
  /** Which images the fleet holds. */
  'images:read': ['admin'],
  /** Prometheus metrics name every tenant's functions. */
  'metrics:read': ['admin'],
  /** Make, list and revoke keys (an owner: of its own tenant, never admin keys). */
  'keys:manage': ['admin', 'owner'],
  /** Who deployed, deleted, rolled back, made or revoked a key. */
  'audit:read': ['admin', 'owner'],
  /** List and describe functions, their versions; env values are shown only with functions:readEnv. */
  'functions:read': ['admin', 'owner', 'developer', 'viewer'],
  'functions:readEnv': ['admin', 'owner', 'developer'],
  /** Deploy, redeploy, roll back, delete. */
  'functions:write': ['admin', 'owner', 'developer'],
  /** Call a function (an `auth: "key"` one included). */
  'functions:invoke': ['admin', 'owner', 'developer', 'invoker'],
  'logs:read': ['admin', 'owner', 'developer', 'viewer'],
  /** Read invocation records; an invoker reads only those of the calls it made. */
  'invocations:read': ['admin', 'owner', 'developer', 'invoker', 'viewer'],
  'deadLetters:read': ['admin', 'owner', 'developer', 'viewer'],
  'deadLetters:redrive': ['admin', 'owner', 'developer'],
  'stats:read': ['admin', 'owner', 'developer', 'viewer'],
} as const satisfies Record<string, readonly Role[]>;

export type Action = keyof typeof ACTIONS;

export function can(role: Role, action: Action): boolean {
  return (ACTIONS[action] as readonly Role[]).includes(role);
}

/** The caller behind a verified key. */
export interface Principal {
  keyId: string;
  tenant: string;
  role: Role;
  /** Functions the key is limited to; null: every function of its tenant. */
  functions: readonly string[] | null;
}

/**
 * How a caller stands to one function: `ok`; `hidden` (another tenant's: answer as if it did not
 * exist); `forbidden` (its own tenant's, but the key is limited to other functions).
 */
export function functionAccess(who: Principal, fn: { name: string; tenant: string }): 'ok' | 'hidden' | 'forbidden' {
  if (who.role !== 'admin' && who.tenant !== fn.tenant) return 'hidden';
  if (who.functions !== null && !who.functions.includes(fn.name)) return 'forbidden';
  return 'ok';
}

/** Whether the caller may see a tenant's data at all. */
export function seesTenant(who: Principal, tenant: string): boolean {
  return who.role === 'admin' || who.tenant === tenant;
}
