/**
 * The one place where errors become HTTP responses: `{"error":{"code","message",...}}` with the
 * status of the error's code (ERROR_STATUS, infra/errors.ts). Fastify's own errors (schema
 * validation, bad JSON, oversized body, unknown route) are translated into Skiff's codes here too;
 * anything else (a bug, or an internal HostError no boundary converted) is `Internal`, logged.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { SkiffError, isSkiffError } from '../infra/errors.js';

export function registerErrorMapping(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const skiff = toSkiffError(error);
    if (skiff.code === 'TooManyRequests') void reply.header('retry-after', String(Math.max(1, Math.ceil(skiff.retryAfterSeconds ?? 1))));
    if (skiff.status >= 500 && skiff.code === 'Internal') request.log.error({ err: error }, 'request failed');
    void reply.status(skiff.status).send({ error: skiff.toBody() });
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new SkiffError('NotFound', `no route ${request.method} ${request.url.split('?')[0]}`);
    void reply.status(error.status).send({ error: error.toBody() });
  });
}

export function toSkiffError(error: FastifyError | Error): SkiffError {
  if (isSkiffError(error)) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const extra = (first?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const base = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
    const field = [base, missing ?? extra].filter(Boolean).join('.') || fastifyError.validationContext || 'body';
    const message = extra ? `unknown field ${field}` : `${field} ${first?.message ?? 'is invalid'}`;
    return new SkiffError('InvalidRequest', message, { field });
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SkiffError('PayloadTooLarge', 'request body is too large', { field: 'body' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new SkiffError('InvalidRequest', `body is not valid JSON: ${error.message}`, { field: 'body' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SkiffError('InvalidRequest', error.message, { field: 'content-type' });
  }
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode < 500) {
    return new SkiffError('InvalidRequest', error.message);
  }
  return new SkiffError('Internal', 'internal error', { cause: error });
}
