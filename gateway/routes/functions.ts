/** Deploy, list, describe and delete functions, list their versions and roll back: /v1/functions. */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import { INVOKE_MODES, RUNTIMES } from '../../infra/functions/version.js';
import type { FunctionEvent } from '../../infra/queue/jobs.js';
import { inspectZip } from '../code/zip-archive.js';
import type { GatewayContext } from '../context.js';
import type { FunctionInfo } from '../../infra/db/function-store.js';
import type { DeployBody, FunctionDescription } from '../../infra/contracts/api.js';
import { can, type Principal } from '../../infra/tenancy/roles.js';
import { TENANT_NAME } from '../../infra/tenancy/quotas.js';
import { listsFunction, principalOf, tenantFilter, visibleFunction } from '../access.js';
import type { FastifyRequest } from 'fastify';
import { MAX_EXPRESSION_LENGTH, MAX_SCHEDULES, validateSchedules } from '../../infra/schedules/expression.js';
import { CORS_SCHEMA, corsOf } from '../http/cors.js';

export const FUNCTION_NAME = '^[a-z][a-z0-9-]{0,62}$';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const deploySchema = {
  body: {
    type: 'object',
    required: ['name', 'runtime', 'handler'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', pattern: FUNCTION_NAME },
      tenant: { type: 'string', pattern: TENANT_NAME },
      runtime: { type: 'string', enum: [...RUNTIMES] },
      handler: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_./-]*\\.[A-Za-z_$][A-Za-z0-9_$]*$', maxLength: 256 },
      code: {
        type: 'object',
        required: ['zip'],
        additionalProperties: false,
        properties: { zip: { type: 'string', minLength: 1 } },
      },
      image: { type: 'string', minLength: 1, maxLength: 512 },
      memoryMb: { type: 'integer', minimum: 64, maximum: 10240 },
      timeoutMs: { type: 'integer', minimum: 1, maximum: 900000 },
      concurrency: { type: 'integer', minimum: 1, maximum: 1000 },
      idleTimeoutMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
      minWarm: { type: 'integer', minimum: 0, maximum: 1000 },
      maxInstances: { type: 'integer', minimum: 1, maximum: 10000 },
      auth: { type: 'string', enum: ['none', 'key'] },
      network: { type: 'string', enum: ['none', 'egress'] },
      idempotent: { type: 'boolean' },
      invokeMode: { type: 'string', enum: [...INVOKE_MODES] },
      maximumRetryAttempts: { type: 'integer', minimum: 0, maximum: 100 },
      maximumEventAgeSeconds: { type: 'integer', minimum: 60, maximum: 21_600 },
      env: {
        type: 'object',
        maxProperties: 256,
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
        additionalProperties: { type: 'string', maxLength: 4096 },
      },
      schedules: {
        type: 'array',
        maxItems: MAX_SCHEDULES,
        items: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          properties: {
            expression: { type: 'string', minLength: 1, maxLength: MAX_EXPRESSION_LENGTH },
            // Its range is checked by validateSchedules, whose error names the entry as schedules[i].
            everyMs: { type: 'integer' },
          },
        },
      },
      cors: CORS_SCHEMA,
    },
  },
} as const;

const nameParams = {
  params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: FUNCTION_NAME } } },
} as const;

const listSchema = {
  querystring: { type: 'object', additionalProperties: false, properties: { tenant: { type: 'string', pattern: TENANT_NAME } } },
} as const;

const rollbackSchema = {
  ...nameParams,
  body: {
    type: 'object',
    required: ['version'],
    additionalProperties: false,
    properties: { version: { type: 'integer', minimum: 1, maximum: 2147483647 } },
  },
} as const;

export function functionRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.post<{ Body: DeployBody }>('/v1/functions', { schema: deploySchema, config: { access: 'functions:write' } }, async (request, reply) => {
    const body = request.body;
    const who = principalOf(request);
    const tenantName = deployTenant(who, body);
    if (who.functions !== null && !who.functions.includes(body.name)) {
      throw new SkiffError('Forbidden', `this key is limited to other functions than ${body.name}`);
    }
    const tenant = await ctx.tenants.get(tenantName);
    if (!tenant) throw invalidRequest('tenant', `tenant ${tenantName} does not exist`);
    const memoryMb = body.memoryMb ?? ctx.config.gateway.defaultMemoryMb;
    const maxInstances = body.maxInstances ?? ctx.config.gateway.defaultMaxInstances;
    const minWarm = body.minWarm ?? 0;
    if (minWarm > maxInstances) throw invalidRequest('minWarm', 'minWarm cannot exceed maxInstances');
    // Instances kept warm count against the tenant's quotas even without calls: refuse what can never fit.
    if (minWarm * memoryMb > tenant.quotas.maxMemoryMb) {
      throw invalidRequest(
        'minWarm',
        `minWarm × memoryMb is ${minWarm * memoryMb} MiB; tenant ${tenant.name} may use ${tenant.quotas.maxMemoryMb} MiB (maxMemoryMb)`,
      );
    }
    if (minWarm > tenant.quotas.maxInstances) {
      throw invalidRequest('minWarm', `minWarm is ${minWarm}; tenant ${tenant.name} may run ${tenant.quotas.maxInstances} instances (maxInstances)`);
    }
    // Checked before an image is built: a bad expression or CORS setting costs nothing.
    const schedules = body.schedules ?? [];
    validateSchedules(schedules);
    const cors = body.cors === undefined ? null : corsOf(body.cors);
    if ((body.code === undefined) === (body.image === undefined)) {
      throw invalidRequest(body.code ? 'image' : 'code', 'give the code either as code.zip or as an image reference in image, not both');
    }
    // Fails early, before an image is built, when the name is another tenant's.
    const existing = await ctx.functions.get(body.name);
    if (existing && existing.tenant !== tenant.name)
      throw new SkiffError('NameTaken', `the function name ${body.name} is taken; choose another`, { field: 'name' });
    let code: { zip: Buffer; sha256: string } | null = null;
    let image;
    if (body.code) {
      const zip = decodeZip(body.code.zip, ctx.config.gateway.maxZipBytes);
      const summary = await inspectZip(
        zip,
        { maxEntries: ctx.config.gateway.maxZipEntries, maxUnpackedBytes: ctx.config.gateway.maxUnpackedBytes },
        body.handler,
        body.runtime,
      );
      code = { zip, sha256: summary.sha256 };
      image = await ctx.images.fromZip(body.name, body.runtime, zip);
    } else {
      image = await ctx.images.fromReference(body.image ?? '', body.runtime, body.name);
    }
    const { info, prunedVersions } = await ctx.functions.deploy({
      name: body.name,
      tenant: tenant.name,
      limits: { maxFunctions: tenant.quotas.maxFunctions, maxVersionsPerFunction: tenant.quotas.maxVersionsPerFunction },
      runtime: body.runtime,
      handler: body.handler,
      memoryMb,
      timeoutMs: body.timeoutMs ?? ctx.config.gateway.defaultTimeoutMs,
      concurrency: body.concurrency ?? ctx.config.gateway.defaultConcurrency,
      idleTimeoutMs: body.idleTimeoutMs ?? ctx.config.gateway.defaultIdleTimeoutMs,
      minWarm,
      maxInstances,
      auth: body.auth ?? 'none',
      network: body.network ?? 'none',
      idempotent: body.idempotent ?? false,
      invokeMode: body.invokeMode ?? 'BUFFERED',
      maximumRetryAttempts: body.maximumRetryAttempts ?? ctx.config.asyncRetries.retries,
      maximumEventAgeSeconds: body.maximumEventAgeSeconds ?? ctx.config.asyncRetries.maxEventAgeSeconds,
      env: body.env ?? {},
      schedules,
      cors,
      code,
      image: image.reference,
    });
    if (prunedVersions > 0) await ctx.redis.hincrby(ctx.keys.pruned, 'versions', prunedVersions);
    await ctx.schedules.replace(existing, info);
    await publish(ctx, { type: 'deployed', name: info.name, version: info.version, image: info.image });
    await ctx.audit.add({
      keyId: who.keyId,
      tenant: info.tenant,
      action: 'function.deploy',
      target: info.name,
      detail: { version: info.version, image: info.image },
    });
    request.log.info(
      { function: info.name, tenant: info.tenant, version: info.version, image: info.image, codeLayerBytes: image.codeLayerBytes },
      'function deployed',
    );
    return reply.status(201).send(describe(ctx, request, info));
  });

  app.get<{ Querystring: { tenant?: string } }>('/v1/functions', { schema: listSchema, config: { access: 'functions:read' } }, async (request) => {
    const who = principalOf(request);
    const all = await ctx.functions.list(tenantFilter(request, request.query.tenant));
    return { functions: all.filter((fn) => listsFunction(who, fn)).map((fn) => describe(ctx, request, fn)) };
  });

  app.get<{ Params: { name: string } }>('/v1/functions/:name', { schema: nameParams, config: { access: 'functions:read' } }, async (request) => {
    return describe(ctx, request, await visibleFunction(ctx.functions, request, request.params.name, 'functions:read'));
  });

  app.get<{ Params: { name: string } }>('/v1/functions/:name/versions', { schema: nameParams, config: { access: 'functions:read' } }, async (request) => {
    await visibleFunction(ctx.functions, request, request.params.name, 'functions:read');
    const versions = await ctx.functions.versions(request.params.name);
    if (!versions) throw notFound(request.params.name);
    return { versions };
  });

  // Points the function back at one of its versions (no new version is made); calls after the
  // answer run it, and workers retire instances of every other version, as after a deploy.
  app.post<{ Params: { name: string }; Body: { version: number } }>(
    '/v1/functions/:name/rollback',
    { schema: rollbackSchema, config: { access: 'functions:write' } },
    async (request) => {
      const { name } = request.params;
      const { version } = request.body;
      const fn = await visibleFunction(ctx.functions, request, name, 'functions:write');
      const result = await ctx.functions.rollback(name, version);
      if (!result.ok) {
        if (result.missing === 'function') throw notFound(name);
        throw new SkiffError('NotFound', `function ${name} has no version ${version}; GET /v1/functions/${name}/versions lists them`, { field: 'version' });
      }
      await ctx.schedules.replace(fn, result.info);
      await publish(ctx, { type: 'deployed', name, version: result.info.version, image: result.info.image });
      await ctx.audit.add({
        keyId: principalOf(request).keyId,
        tenant: fn.tenant,
        action: 'function.rollback',
        target: name,
        detail: { version: result.info.version },
      });
      request.log.info({ function: name, version: result.info.version }, 'function rolled back');
      return describe(ctx, request, result.info);
    },
  );

  app.delete<{ Params: { name: string } }>('/v1/functions/:name', { schema: nameParams, config: { access: 'functions:write' } }, async (request) => {
    const fn = await visibleFunction(ctx.functions, request, request.params.name, 'functions:write');
    const deleted = await ctx.functions.delete(request.params.name);
    if (!deleted) throw notFound(request.params.name);
    await ctx.schedules.replace(fn, undefined);
    await publish(ctx, { type: 'deleted', name: request.params.name });
    await ctx.audit.add({ keyId: principalOf(request).keyId, tenant: fn.tenant, action: 'function.delete', target: fn.name, detail: { version: fn.version } });
    return { name: request.params.name, deleted: true };
  });
}

/** Where a deploy lands: the key's tenant; an admin key may name another, no other key may. */
function deployTenant(who: Principal, body: DeployBody): string {
  if (body.tenant === undefined || body.tenant === who.tenant) return who.tenant;
  if (who.role !== 'admin') throw new SkiffError('Forbidden', `a ${who.role} key deploys into its own tenant (${who.tenant}) only`, { field: 'tenant' });
  return body.tenant;
}

export function notFound(name: string): SkiffError {
  return new SkiffError('FunctionNotFound', `function ${name} does not exist`);
}

function decodeZip(base64: string, maxBytes: number): Buffer {
  const compact = base64.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.length % 4 === 1) throw invalidRequest('code.zip', 'code.zip must be base64');
  const zip = Buffer.from(compact, 'base64');
  if (zip.length > maxBytes) throw invalidRequest('code.zip', `code.zip is ${zip.length} bytes; the limit is ${maxBytes}`);
  return zip;
}

async function publish(ctx: GatewayContext, event: FunctionEvent): Promise<void> {
  ctx.current.forget(event.name);
  await ctx.redis.publish(ctx.keys.functionEvents, JSON.stringify(event));
}

function describe(ctx: GatewayContext, request: FastifyRequest, info: FunctionInfo): FunctionDescription {
  const { versionId: _versionId, env, ...shown } = info;
  const withEnv = can(principalOf(request).role, 'functions:readEnv');
  return { ...shown, ...(withEnv ? { env } : {}), envNames: Object.keys(env).sort(), url: ctx.functionUrl(info.name) };
}
