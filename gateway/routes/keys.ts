/**
 * API keys: POST /v1/keys {"name","tenant","role","expiresAt","functions"} → 201 with the key
 * (shown once), GET /v1/keys, DELETE /v1/keys/:id. An admin key manages every tenant's keys; an
 * owner key only its own tenant's, and never makes or revokes an admin key.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import { ROLES, type Role } from '../../infra/tenancy/roles.js';
import { TENANT_NAME } from '../../infra/tenancy/quotas.js';
import type { GatewayContext } from '../context.js';
import { principalOf, tenantFilter } from '../access.js';
import { FUNCTION_NAME } from './functions.js';

interface CreateKeyBody {
  name: string;
  tenant?: string;
  role: Role;
  expiresAt?: string;
  functions?: string[];
}

const createSchema = {
  body: {
    type: 'object',
    required: ['name', 'role'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 100 },
      tenant: { type: 'string', pattern: TENANT_NAME },
      role: { type: 'string', enum: [...ROLES] },
      expiresAt: { type: 'string', maxLength: 40 },
      functions: { type: 'array', minItems: 1, maxItems: 100, uniqueItems: true, items: { type: 'string', pattern: FUNCTION_NAME } },
    },
  },
} as const;

const listSchema = {
  querystring: { type: 'object', additionalProperties: false, properties: { tenant: { type: 'string', pattern: TENANT_NAME } } },
} as const;

export function keyRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.post<{ Body: CreateKeyBody }>('/v1/keys', { schema: createSchema, config: { access: 'keys:manage' } }, async (request, reply) => {
    const who = principalOf(request);
    const body = request.body;
    const tenant = body.tenant ?? who.tenant;
    if (who.role !== 'admin') {
      if (tenant !== who.tenant) throw new SkiffError('Forbidden', `an ${who.role} key makes keys of its own tenant (${who.tenant}) only`, { field: 'tenant' });
      if (body.role === 'admin') throw new SkiffError('Forbidden', 'only an admin key makes admin keys', { field: 'role' });
    }
    if (!(await ctx.tenants.get(tenant))) throw invalidRequest('tenant', `tenant ${tenant} does not exist`);
    let expiresAt: Date | null = null;
    if (body.expiresAt !== undefined) {
      expiresAt = new Date(body.expiresAt);
      if (!Number.isFinite(expiresAt.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(body.expiresAt))
        throw invalidRequest('expiresAt', 'expiresAt must be an ISO date-time such as 2027-01-31T00:00:00Z');
      if (expiresAt.getTime() <= Date.now()) throw invalidRequest('expiresAt', 'expiresAt must be in the future');
    }
    const { id, key, info } = await ctx.apiKeys.create({ name: body.name, tenant, role: body.role, expiresAt, functions: body.functions ?? null });
    await ctx.audit.add({ keyId: who.keyId, tenant, action: 'key.create', target: id, detail: { name: body.name, role: body.role } });
    request.log.info({ keyId: id, name: body.name, tenant, role: body.role }, 'API key created');
    return reply.status(201).send({ ...info, key });
  });

  app.get<{ Querystring: { tenant?: string } }>('/v1/keys', { schema: listSchema, config: { access: 'keys:manage' } }, async (request) => ({
    keys: await ctx.apiKeys.list(tenantFilter(request, request.query.tenant)),
  }));

  app.delete<{ Params: { id: string } }>(
    '/v1/keys/:id',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9]{1,64}$' } } } }, config: { access: 'keys:manage' } },
    async (request) => {
      const who = principalOf(request);
      const key = await ctx.apiKeys.get(request.params.id);
      // Another tenant's key is answered as a missing one.
      if (!key || (who.role !== 'admin' && key.tenant !== who.tenant)) throw new SkiffError('NotFound', `API key ${request.params.id} does not exist`);
      if (who.role !== 'admin' && key.role === 'admin') throw new SkiffError('Forbidden', 'only an admin key revokes admin keys');
      if (!(await ctx.apiKeys.delete(key.id))) throw new SkiffError('NotFound', `API key ${key.id} does not exist`);
      await ctx.audit.add({ keyId: who.keyId, tenant: key.tenant, action: 'key.revoke', target: key.id, detail: { name: key.name, role: key.role } });
      return { id: key.id, deleted: true };
    },
  );
}
