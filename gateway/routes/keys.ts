/** API keys: POST /v1/keys {"name"} → 201 with the key (shown once), GET /v1/keys, DELETE /v1/keys/:id. */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';

export function keyRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.post<{ Body: { name: string } }>(
    '/v1/keys',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: { name: { type: 'string', minLength: 1, maxLength: 100 } },
        },
      },
    },
    async (request, reply) => {
      const { id, key } = await ctx.apiKeys.create(request.body.name);
      request.log.info({ keyId: id, name: request.body.name }, 'API key created');
      return reply.status(201).send({ id, name: request.body.name, key });
    },
  );

  app.get('/v1/keys', async () => ({ keys: await ctx.apiKeys.list() }));

  app.delete<{ Params: { id: string } }>(
    '/v1/keys/:id',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9]{1,64}$' } } } } },
    async (request) => {
      if (!(await ctx.apiKeys.delete(request.params.id))) throw new SkiffError('NotFound', `API key ${request.params.id} does not exist`);
      return { id: request.params.id, deleted: true };
    },
  );
}
