/** GET /v1/whoami: the caller's key id, tenant, role and function list. GET /v1/audit: who deployed, deleted, rolled back, made or revoked a key, and when (admin: every tenant; owner: its own). */
import type { FastifyInstance } from 'fastify';
import { TENANT_NAME } from '../../infra/tenancy/quotas.js';
import type { GatewayContext } from '../context.js';
import { principalOf, tenantFilter } from '../access.js';

const schema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      tenant: { type: 'string', pattern: TENANT_NAME },
      // Decimal strings: query strings are not type-coerced (the app's ajv does not coerce).
      before: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$|^1000$' },
    },
  },
} as const;

export function auditRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // Who the key is, so the dashboard and the CLI show what this key may see.
  app.get('/v1/whoami', { config: { access: 'self:read' } }, async (request) => principalOf(request));

  app.get<{ Querystring: { tenant?: string; before?: string; limit?: string } }>('/v1/audit', { schema, config: { access: 'audit:read' } }, async (request) => {
    const tenant = tenantFilter(request, request.query.tenant);
    const events = await ctx.audit.list({
      ...(tenant === undefined ? {} : { tenant }),
      ...(request.query.before === undefined ? {} : { before: Number(request.query.before) }),
      limit: request.query.limit === undefined ? 100 : Number(request.query.limit),
    });
    return { events };
  });
}
