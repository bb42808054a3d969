/**
 * Numbers for operators (the dashboard at /ui reads them; docs/DASHBOARD.md):
 * - GET /v1/stats/functions?windowMinutes=: every function's calls, errors, p50/p99 latency and
 *   cold-start ratio over the window, and its instances now (from the workers' heartbeats);
 * - GET /v1/stats/functions/:name?windowMinutes=: the same for one function, and per minute;
 * - GET /v1/functions/:name/invocations?limit=: its latest invocations, newest first.
 * The invocation numbers are computed in PostgreSQL (infra/db/invocation-stats.ts).
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import { InvocationStats, MAX_INVOCATIONS, MAX_WINDOW_MINUTES, type FunctionStats } from '../../infra/db/invocation-stats.js';
import { FleetRegistry } from '../../infra/fleet/registry.js';
import type { GatewayContext } from '../context.js';
import { FUNCTION_NAME, notFound } from './functions.js';
import { listsFunction, principalOf, tenantFilter, visibleFunction } from '../access.js';

const DEFAULT_WINDOW_MINUTES = 60;
const DEFAULT_INVOCATIONS = 50;

const error = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
  },
} as const;
const nullableNumber = { type: ['number', 'null'] } as const;

const functionStats = {
  type: 'object',
  required: ['name', 'calls', 'errors', 'callsPerMinute', 'p50Ms', 'p99Ms', 'coldStarts', 'coldStartRatio', 'lastCallAt', 'instances'],
  properties: {
    name: { type: 'string' },
    calls: { type: 'integer', description: 'calls recorded in the window' },
    errors: { type: 'integer', description: 'calls that failed' },
    callsPerMinute: { type: 'number' },
    p50Ms: { ...nullableNumber, description: 'median duration of finished calls, ms' },
    p99Ms: { ...nullableNumber, description: '99th percentile duration of finished calls, ms' },
    coldStarts: { type: 'integer' },
    coldStartRatio: { ...nullableNumber, description: 'cold starts / calls whose cold-or-warm is known' },
    lastCallAt: { type: ['string', 'null'], format: 'date-time' },
    instances: {
      type: 'object',
      description: "the function's instances on live workers now (any version), from their heartbeats",
      required: ['busy', 'idle'],
      properties: { busy: { type: 'integer' }, idle: { type: 'integer' } },
    },
  },
} as const;

const windowQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // A decimal string: query strings are not type-coerced (the app's ajv does not coerce).
    windowMinutes: {
      type: 'string',
      pattern: '^[0-9]{1,6}$',
      description: `minutes to look back, 1 to ${MAX_WINDOW_MINUTES} (default ${DEFAULT_WINDOW_MINUTES})`,
    },
  },
} as const;

const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: FUNCTION_NAME } } } as const;

const listSchema = {
  description: "Every function's calls, errors, latency percentiles, cold-start ratio and instances over the last windowMinutes.",
  querystring: windowQuery,
  response: {
    200: {
      type: 'object',
      required: ['windowMinutes', 'functions'],
      properties: { windowMinutes: { type: 'integer' }, functions: { type: 'array', items: functionStats } },
    },
    400: error,
  },
} as const;

const oneSchema = {
  description: "One function's statistics over the last windowMinutes, in total and per minute (oldest first; empty minutes included).",
  params: nameParams,
  querystring: windowQuery,
  response: {
    200: {
      type: 'object',
      required: ['windowMinutes', 'function', 'minutes'],
      properties: {
        windowMinutes: { type: 'integer' },
        function: functionStats,
        minutes: {
          type: 'array',
          items: {
            type: 'object',
            required: ['minute', 'calls', 'errors', 'p50Ms', 'p99Ms', 'coldStarts'],
            properties: {
              minute: { type: 'string', format: 'date-time', description: 'start of the minute' },
              calls: { type: 'integer' },
              errors: { type: 'integer' },
              p50Ms: nullableNumber,
              p99Ms: nullableNumber,
              coldStarts: { type: 'integer' },
            },
          },
        },
      },
    },
    400: error,
    404: error,
  },
} as const;

const invocationsSchema = {
  description: "A function's latest invocations, newest first; GET /v1/functions/{name}/logs?invocation= has each one's log lines.",
  params: nameParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { limit: { type: 'string', pattern: '^[0-9]{1,6}$', description: `1 to ${MAX_INVOCATIONS} (default ${DEFAULT_INVOCATIONS})` } },
  },
  response: {
    200: {
      type: 'object',
      required: ['invocations'],
      properties: {
        invocations: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'version', 'async', 'status', 'cold', 'durationMs', 'workerId', 'createdAt', 'finishedAt', 'error'],
            properties: {
              id: { type: 'string' },
              version: { type: 'integer' },
              async: { type: 'boolean' },
              status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'refused'] },
              cold: { type: ['boolean', 'null'] },
              durationMs: nullableNumber,
              workerId: { type: ['string', 'null'] },
              createdAt: { type: 'string', format: 'date-time' },
              finishedAt: { type: ['string', 'null'], format: 'date-time' },
              error: {
                type: ['object', 'null'],
                required: ['code', 'message'],
                properties: { code: { type: 'string' }, message: { type: 'string' } },
              },
            },
          },
        },
      },
    },
    400: error,
    404: error,
  },
} as const;

/** A decimal query value within [1, max], or `fallback` when absent; else 400 naming the field. */
function bounded(field: string, value: string | undefined, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw invalidRequest(field, `${field} must be an integer from 1 to ${max}`);
  return n;
}

export function statsRoutes(app: FastifyInstance, ctx: GatewayContext, stats: InvocationStats): void {
  /** Busy and idle instances per function name, summed over the live workers' last heartbeats. */
  const fleet = new FleetRegistry(ctx.redis, ctx.keys, ctx.config.scheduler.heartbeatTtlMs);
  const instances = async (): Promise<Map<string, { busy: number; idle: number }>> => {
    const beats = await fleet.live();
    const byVersion = new Map<string, { busy: number; idle: number }>();
    for (const beat of beats) {
      for (const kind of ['busy', 'idle'] as const) {
        for (const [versionId, n] of Object.entries(beat[kind])) {
          const counts = byVersion.get(versionId) ?? { busy: 0, idle: 0 };
          counts[kind] += n;
          byVersion.set(versionId, counts);
        }
      }
    }
    const names = await stats.versionNames([...byVersion.keys()]);
    const byName = new Map<string, { busy: number; idle: number }>();
    for (const [versionId, counts] of byVersion) {
      const name = names.get(versionId);
      if (name === undefined) continue;
      const total = byName.get(name) ?? { busy: 0, idle: 0 };
      byName.set(name, { busy: total.busy + counts.busy, idle: total.idle + counts.idle });
    }
    return byName;
  };
  const withInstances = (f: FunctionStats, all: Map<string, { busy: number; idle: number }>) => ({ ...f, instances: all.get(f.name) ?? { busy: 0, idle: 0 } });

  const access = { access: 'stats:read' } as const;
  app.get<{ Querystring: { windowMinutes?: string } }>('/v1/stats/functions', { schema: listSchema, config: access }, async (request) => {
    const windowMinutes = bounded('windowMinutes', request.query.windowMinutes, MAX_WINDOW_MINUTES, DEFAULT_WINDOW_MINUTES);
    const who = principalOf(request);
    const tenant = tenantFilter(request);
    const [functions, all] = await Promise.all([stats.functions(windowMinutes, undefined, tenant), instances()]);
    const shown = who.functions === null ? functions : functions.filter((f) => listsFunction(who, { name: f.name, tenant: who.tenant }));
    return { windowMinutes, functions: shown.map((f) => withInstances(f, all)) };
  });

  app.get<{ Params: { name: string }; Querystring: { windowMinutes?: string } }>(
    '/v1/stats/functions/:name',
    { schema: oneSchema, config: access },
    async (request) => {
      const { name } = request.params;
      const windowMinutes = bounded('windowMinutes', request.query.windowMinutes, MAX_WINDOW_MINUTES, DEFAULT_WINDOW_MINUTES);
      const fn = await visibleFunction(ctx.functions, request, name, 'stats:read');
      const [[summary], minutes, all] = await Promise.all([
        stats.functions(windowMinutes, name, fn.tenant),
        stats.perMinute(name, fn.tenant, windowMinutes),
        instances(),
      ]);
      if (!summary) throw notFound(name);
      return { windowMinutes, function: withInstances(summary, all), minutes };
    },
  );

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>(
    '/v1/functions/:name/invocations',
    { schema: invocationsSchema, config: { access: 'invocations:read' } },
    async (request) => {
      const { name } = request.params;
      const limit = bounded('limit', request.query.limit, MAX_INVOCATIONS, DEFAULT_INVOCATIONS);
      // An invoker reads single records of its own calls (GET /v1/invocations/:id), not a function's list.
      if (principalOf(request).role === 'invoker')
        throw new SkiffError('Forbidden', 'an invoker key reads the records of its own calls only: GET /v1/invocations/{id}');
      const fn = await visibleFunction(ctx.functions, request, name, 'invocations:read');
      return { invocations: await stats.recent(name, fn.tenant, limit) };
    },
  );
}
