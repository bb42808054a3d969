/**
 * Tenants, for admin keys only: POST /v1/tenants {"name", quotas...} (201), GET /v1/tenants,
 * GET /v1/tenants/:name, PATCH /v1/tenants/:name (quotas; null returns one to the default),
 * DELETE /v1/tenants/:name (409 while it owns functions; its keys go with it).
 */
import type { FastifyInstance } from 'fastify';
import { QUOTA_NAMES, TENANT_NAME, type TenantQuotas } from '../../infra/tenancy/quotas.js';
import type { GatewayContext } from '../context.js';
import { principalOf } from '../access.js';

const quotaProperties = Object.fromEntries(
  QUOTA_NAMES.map((name) => [name, { type: ['integer', 'null'], minimum: name === 'maxMemoryMb' ? 64 : 1, maximum: 1_000_000_000 }]),
);
const nameParams = { params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TENANT_NAME } } } } as const;

type QuotaChanges = Partial<Record<keyof TenantQuotas, number | null>>;

export function tenantRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const config = { access: 'tenants:manage' } as const;

  app.post<{ Body: { name: string; quotas?: QuotaChanges } }>(
    '/v1/tenants',
    {
      config,
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: { name: { type: 'string', pattern: TENANT_NAME }, quotas: { type: 'object', additionalProperties: false, properties: quotaProperties } },
        },
      },
    },
    async (request, reply) => {
      const own = Object.fromEntries(Object.entries(request.body.quotas ?? {}).filter(([, v]) => v !== null)) as Partial<TenantQuotas>;
      const tenant = await ctx.tenants.create(request.body.name, own);
      await ctx.audit.add({ keyId: principalOf(request).keyId, tenant: tenant.name, action: 'tenant.create', target: tenant.name, detail: { quotas: own } });
      return reply.status(201).send(tenant);
    },
  );

  app.get('/v1/tenants', { config }, async () => ({ tenants: await ctx.tenants.list() }));

  app.get<{ Params: { name: string } }>('/v1/tenants/:name', { config, schema: nameParams }, async (request) => ctx.tenants.require(request.params.name));

  app.patch<{ Params: { name: string }; Body: QuotaChanges }>(
    '/v1/tenants/:name',
    { config, schema: { ...nameParams, body: { type: 'object', minProperties: 1, additionalProperties: false, properties: quotaProperties } } },
    async (request) => {
      const tenant = await ctx.tenants.setQuotas(request.params.name, request.body);
      ctx.tenantQuotas.forget(tenant.name);
      await ctx.audit.add({
        keyId: principalOf(request).keyId,
        tenant: tenant.name,
        action: 'tenant.update',
        target: tenant.name,
        detail: { quotas: request.body },
      });
      return tenant;
    },
  );

  app.delete<{ Params: { name: string } }>('/v1/tenants/:name', { config, schema: nameParams }, async (request) => {
    await ctx.tenants.delete(request.params.name);
    ctx.tenantQuotas.forget(request.params.name);
    ctx.apiKeys.forgetTenant(request.params.name);
    await ctx.audit.add({ keyId: principalOf(request).keyId, tenant: request.params.name, action: 'tenant.delete', target: request.params.name, detail: {} });
    return { name: request.params.name, deleted: true };
  });
}
