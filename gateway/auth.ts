/**
 * Who is calling, and may they: API keys (`Authorization: Bearer sk_...`) name a tenant and a
 * role (infra/tenancy/roles.ts). No key is 401; a role that may not act is 403 `Forbidden`;
 * another tenant's function (or its logs, invocations, dead letters) is 404, as if it did not
 * exist, so a key learns nothing about other tenants.
 */
import type { FastifyRequest } from 'fastify';
import { SkiffError } from '../infra/errors.js';
import type { ApiKeys } from '../infra/db/api-keys.js';
import { can, functionAccess, type Action, type Principal } from '../infra/tenancy/roles.js';

/** The verified caller, or 401. */
export async function authenticate(apiKeys: ApiKeys, request: FastifyRequest): Promise<Principal> {
  const header = request.headers.authorization;
  if (header === undefined) throw new SkiffError('Unauthorized', 'an API key is required: Authorization: Bearer <key>');
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const who = match?.[1] ? await apiKeys.verify(match[1]) : undefined;
  if (who === undefined) throw new SkiffError('Unauthorized', 'the API key is not valid (or has expired)');
  return who;
}

/** 403 unless the caller's role may do `action`. */
export function authorize(who: Principal, action: Action): void {
  if (!can(who.role, action)) throw new SkiffError('Forbidden', `a ${who.role} key may not do this (${action})`);
}

/**
 * 403 when the role may not act (whatever the function: that says nothing about it), then 404 for
 * another tenant's function (the answer a missing one gets), 403 when the key is limited to other
 * functions.
 */
export function authorizeFunction(who: Principal, action: Action, fn: { name: string; tenant: string }): void {
  authorize(who, action);
  const access = functionAccess(who, fn);
  if (access === 'hidden') throw new SkiffError('FunctionNotFound', `function ${fn.name} does not exist`);
  if (access === 'forbidden') throw new SkiffError('Forbidden', `this key is limited to other functions than ${fn.name}`);
}
