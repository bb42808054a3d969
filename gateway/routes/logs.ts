/**
 * GET /v1/functions/:name/logs: a function's log lines, oldest first — all of them recently
 * (`limit`), since a time (`since`: ISO date or ms since epoch), or of one invocation
 * (`invocation`). With `follow=1` the answer is a stream of NDJSON lines that goes on with new
 * lines as the function writes them, until the client disconnects.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import { openRedis } from '../../infra/queue/connections.js';
import type { LogLine, LogQuery } from '../../infra/db/log-store.js';
import type { GatewayContext } from '../context.js';
import { FUNCTION_NAME } from './functions.js';
import { visibleFunction } from '../access.js';

interface LogsQuery {
  since?: string;
  invocation?: string;
  /** A decimal string: query strings are not type-coerced (the app's ajv does not coerce). */
  limit?: string;
  follow?: string;
}

const schema = {
  params: { type: 'object', properties: { name: { type: 'string', pattern: FUNCTION_NAME } } },
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      since: { type: 'string', maxLength: 40 },
      invocation: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,3}$|^10000$' },
      follow: { type: 'string', enum: ['0', '1', 'true', 'false'] },
    },
  },
} as const;

export function logRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // Follow streams never end by themselves: end them when the gateway closes, so closing does
  // not wait for their clients.
  const following = new Set<{ destroy(): void }>();
  app.addHook('preClose', async () => {
    for (const res of following) res.destroy();
  });
  app.get<{ Params: { name: string }; Querystring: LogsQuery }>(
    '/v1/functions/:name/logs',
    { schema, config: { access: 'logs:read' } },
    async (request, reply) => {
      const name = request.params.name;
      await visibleFunction(ctx.functions, request, name, 'logs:read');
      const query: LogQuery = { functionName: name, limit: request.query.limit === undefined ? 1000 : Number(request.query.limit) };
      if (request.query.invocation !== undefined) query.invocationId = request.query.invocation;
      if (request.query.since !== undefined) query.since = parseSince(request.query.since);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      if (!follow) return { lines: (await ctx.logs.query(query)).map(present) };

      // Subscribe before reading what is stored, so no line falls between the two. A follower's own
      // subscriber waits for Redis; while Redis is away the request is refused rather than held.
      if (ctx.redis.status !== 'ready') throw new SkiffError('Unavailable', 'Redis does not answer: logs cannot be followed now');
      const subscriber = openRedis(ctx.config.redisUrl, 'subscriber', ctx.config.redisClient, { log: request.log, component: 'gateway-logs' });
      const early: LogLine[] = [];
      const sink: { live?: (lines: LogLine[]) => void } = {};
      subscriber.on('message', (_channel: string, message: string) => {
        const lines = (JSON.parse(message) as LogLine[]).filter((l) => query.invocationId === undefined || l.invocationId === query.invocationId);
        if (sink.live) sink.live(lines);
        else early.push(...lines);
      });
      await subscriber.subscribe(ctx.keys.logs(name));
      const stored = await ctx.logs.query(query);

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
      const write = (lines: LogLine[]): void => {
        for (const line of lines) res.write(`${JSON.stringify(present(line))}\n`);
      };
      write(stored);
      const last = stored.at(-1);
      const seen = new Set(stored.filter((l) => l.at === last?.at).map(key));
      write(early.filter((l) => !last || l.at > last.at || (l.at === last.at && !seen.has(key(l)))));
      sink.live = write;
      following.add(res);
      // The response's close, not the request's: a GET's request stream ends as soon as it is read.
      res.on('close', () => {
        following.delete(res);
        void subscriber.quit().catch((error: unknown) => request.log.warn({ err: error }, 'log follower did not close cleanly'));
      });
    },
  );
}

function parseSince(since: string): number {
  const ms = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
  if (!Number.isFinite(ms)) throw invalidRequest('since', 'since must be an ISO date or milliseconds since the epoch');
  return ms;
}

const key = (l: LogLine): string => `${l.at}|${l.sandboxId}|${l.stream}|${l.text}`;

function present(line: LogLine): Record<string, unknown> {
  return {
    at: new Date(line.at).toISOString(),
    version: line.functionVersion,
    invocationId: line.invocationId,
    instance: line.sandboxId,
    stream: line.stream,
    text: line.text,
  };
}
