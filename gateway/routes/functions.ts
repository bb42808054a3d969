/** Deploy, list, describe and delete functions, list their versions and roll back: /v1/functions. */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import { RUNTIMES, type FunctionEvent, type Runtime } from '../../infra/queue/jobs.js';
import { inspectZip } from '../code/zip-archive.js';
import type { GatewayContext } from '../context.js';
import type { FunctionInfo } from '../../infra/db/function-store.js';

export const FUNCTION_NAME = '^[a-z][a-z0-9-]{0,62}$';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The body of POST /v1/functions (the CLI sends it too). */
export interface DeployBody {
  name: string;
  runtime: Runtime;
  handler: string;
  /** The code as a zip; or else `image`. */
  code?: { zip: string };
  /** An image in Skiff's registry built on a runtime image (docs/RUNTIMES.md); or else `code`. */
  image?: string;
  memoryMb?: number;
  timeoutMs?: number;
  concurrency?: number;
  idleTimeoutMs?: number;
  minWarm?: number;
  maxInstances?: number;
  auth?: 'none' | 'key';
  network?: 'none' | 'egress';
  idempotent?: boolean;
  env?: Record<string, string>;
}

const deploySchema = {
  body: {
    type: 'object',
    required: ['name', 'runtime', 'handler'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', pattern: FUNCTION_NAME },
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
      env: {
        type: 'object',
        maxProperties: 256,
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
        additionalProperties: { type: 'string', maxLength: 4096 },
      },
    },
  },
} as const;

const nameParams = {
  params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: FUNCTION_NAME } } },
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
  app.post<{ Body: DeployBody }>('/v1/functions', { schema: deploySchema }, async (request, reply) => {
    const body = request.body;
    if ((body.minWarm ?? 0) > (body.maxInstances ?? 100)) throw invalidRequest('minWarm', 'minWarm cannot exceed maxInstances');
    if ((body.code === undefined) === (body.image === undefined)) {
      throw invalidRequest(body.code ? 'image' : 'code', 'give the code either as code.zip or as an image reference in image, not both');
    }
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
      image = await ctx.images.fromReference(body.image ?? '', body.runtime);
    }
    const info = await ctx.functions.deploy({
      name: body.name,
      runtime: body.runtime,
      handler: body.handler,
      memoryMb: body.memoryMb ?? 128,
      timeoutMs: body.timeoutMs ?? 30000,
      concurrency: body.concurrency ?? 1,
      idleTimeoutMs: body.idleTimeoutMs ?? ctx.config.gateway.defaultIdleTimeoutMs,
      minWarm: body.minWarm ?? 0,
      maxInstances: body.maxInstances ?? 100,
      auth: body.auth ?? 'none',
      network: body.network ?? 'none',
      idempotent: body.idempotent ?? false,
      env: body.env ?? {},
      code,
      image: image.reference,
    });
    await publish(ctx, { type: 'deployed', name: info.name, version: info.version, image: info.image });
    request.log.info({ function: info.name, version: info.version, image: info.image, codeLayerBytes: image.codeLayerBytes }, 'function deployed');
    return reply.status(201).send(describe(info));
  });

  app.get('/v1/functions', async () => ({ functions: (await ctx.functions.list()).map(describe) }));

  app.get<{ Params: { name: string } }>('/v1/functions/:name', { schema: nameParams }, async (request) => {
    const info = await ctx.functions.get(request.params.name);
    if (!info) throw notFound(request.params.name);
    return describe(info);
  });

  app.get<{ Params: { name: string } }>('/v1/functions/:name/versions', { schema: nameParams }, async (request) => {
    const versions = await ctx.functions.versions(request.params.name);
    if (!versions) throw notFound(request.params.name);
    return { versions };
  });

  // Points the function back at one of its versions (no new version is made); calls after the
  // answer run it, and workers retire instances of every other version, as after a deploy.
  app.post<{ Params: { name: string }; Body: { version: number } }>('/v1/functions/:name/rollback', { schema: rollbackSchema }, async (request) => {
    const { name } = request.params;
    const { version } = request.body;
    const result = await ctx.functions.rollback(name, version);
    if (!result.ok) {
      if (result.missing === 'function') throw notFound(name);
      throw new SkiffError('NotFound', `function ${name} has no version ${version}; GET /v1/functions/${name}/versions lists them`, { field: 'version' });
    }
    await publish(ctx, { type: 'deployed', name, version: result.info.version, image: result.info.image });
    request.log.info({ function: name, version: result.info.version }, 'function rolled back');
    return describe(result.info);
  });

  app.delete<{ Params: { name: string } }>('/v1/functions/:name', { schema: nameParams }, async (request) => {
    const deleted = await ctx.functions.delete(request.params.name);
    if (!deleted) throw notFound(request.params.name);
    await publish(ctx, { type: 'deleted', name: request.params.name });
    return { name: request.params.name, deleted: true };
  });
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

/** A function as the API shows it: its current version, and the URL that calls it. */
export type FunctionDescription = Omit<FunctionInfo, 'versionId'> & { url: string };

function describe(info: FunctionInfo): FunctionDescription {
  const { versionId: _versionId, ...shown } = info;
  return { ...shown, url: `/fn/${info.name}` };
}
