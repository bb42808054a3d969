/** GET /v1/images: the images the fleet's live nodes hold ready, from their heartbeats. */
import type { FastifyInstance } from 'fastify';
import { FleetRegistry } from '../../infra/fleet/registry.js';
import type { GatewayContext } from '../context.js';

const imagesSchema = {
  response: {
    200: {
      type: 'object',
      properties: {
        images: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              reference: { type: 'string' },
              digest: { type: 'string' },
              runtime: { type: 'string' },
              workers: { type: 'array', items: { type: 'string' } },
            },
          },
        },
      },
    },
  },
} as const;

export function imageRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const fleet = new FleetRegistry(ctx.redis, ctx.keys, ctx.config.scheduler.heartbeatTtlMs);
  app.get('/v1/images', { schema: imagesSchema, config: { access: 'images:read' } }, async () => {
    // A node past the heartbeat TTL holds nothing the fleet can use: its images are not listed.
    const beats = await fleet.live();
    const byDigest = new Map<string, { reference: string; digest: string; runtime?: string; workers: string[] }>();
    for (const beat of beats) {
      for (const image of beat.images ?? []) {
        const entry = byDigest.get(image.digest) ?? {
          reference: image.reference,
          digest: image.digest,
          ...(image.runtime ? { runtime: image.runtime } : {}),
          workers: [],
        };
        if (!entry.workers.includes(beat.id)) entry.workers.push(beat.id);
        byDigest.set(image.digest, entry);
      }
    }
    return { images: [...byDigest.values()].sort((a, b) => a.reference.localeCompare(b.reference)) };
  });
}
