/**
 * The API described from the routes' own JSON schemas (@fastify/swagger), served as OpenAPI 3 at
 * GET /openapi.json, with a browsable UI at /docs (@fastify/swagger-ui). Registered before the
 * routes so that it sees every one of them.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export function registerOpenApi(app: FastifyInstance): void {
  app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Skiff',
        version: '1',
        description: 'Serverless functions, each call in a real Linux container. Errors are {"error":{"code","message","field"}}.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'sk_... API key' } } },
      security: [{ apiKey: [] }],
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
