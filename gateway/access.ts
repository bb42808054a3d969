/**
 * The tenant and role check every API route goes through. Each route names what it does in its
 * options (`config: { action: 'functions:read' }`, the actions of infra/tenancy/roles.ts); a
 * route under /v1/ that names none is refused when the app is built, so no route can be added
 * without the check. Before the handler runs, the caller's key is verified (401) and its role
 * checked against the action (403); the handler then scopes what it reads to the caller's tenant
 * (`visibleFunction`, `tenantFilter`).
 *
 * Two kinds of routes do their own check: `call` (invoke: a key is needed only by `auth: "key"`
 * functions, gateway/invocations/call.ts) and `public` (health, the dashboard's page).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SkiffError } from '../infra/errors.js';
import type { ApiKeys } from '../infra/db/api-keys.js';
import type { FunctionInfo } from '../infra/db/function-store.js';
import type { Action, Principal } from '../infra/tenancy/roles.js';
import { authenticate, authorize, authorizeFunction } from './auth.js';

export type RouteAccess = Action | 'call' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** The verified caller, on routes that check a key. */
    principal: Principal | null;
  }
}

export function registerAccess(app: FastifyInstance, apiKeys: ApiKeys): void {
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    const access = (route.config as { access?: RouteAccess } | undefined)?.access;
    const guarded = route.url.startsWith('/v1/') || route.url === '/v1' || route.url === '/metrics';
    if (guarded && access === undefined) throw new Error(`route ${String(route.method)} ${route.url} names no access (config.access)`);
  });
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (access === undefined || access === 'call' || access === 'public') return;
    const who = await authenticate(apiKeys, request);
    authorize(who, access);
    request.principal = who;
  });
}

/** The caller of a route that checked a key (a bug if called on one that did not). */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null) throw new SkiffError('Internal', `route ${request.url} read its caller without checking a key`);
  return request.principal;
}

/**
 * The function, if the caller may `action` on it: 404 when it does not exist or is another
 * tenant's (the same answer), 403 when its key is limited to other functions.
 */
export async function visibleFunction(
  store: { get(name: string): Promise<FunctionInfo | undefined> },
  request: FastifyRequest,
  name: string,
  action: Action,
): Promise<FunctionInfo> {
  const info = await store.get(name);
  if (!info) throw new SkiffError('FunctionNotFound', `function ${name} does not exist`);
  authorizeFunction(principalOf(request), action, info);
  return info;
}

/** The tenant to list for: the caller's own, or for an admin every tenant unless it names one. */
export function tenantFilter(request: FastifyRequest, asked?: string): string | undefined {
  const who = principalOf(request);
  if (who.role !== 'admin') return who.tenant;
  return asked;
}

/** Whether a function shows in the caller's lists (its tenant, and the key's function list). */
export function listsFunction(who: Principal, fn: { name: string; tenant: string }): boolean {
  return (who.role === 'admin' || who.tenant === fn.tenant) && (who.functions === null || who.functions.includes(fn.name));
}
