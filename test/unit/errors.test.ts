import t from 'tap';
import Fastify, { errorCodes } from 'fastify';
import { ERROR_STATUS, SkiffError, invalidRequest, isSkiffError } from '../../infra/errors.js';
import type { ErrorBody, ErrorCode } from '../../infra/errors.js';
import { registerErrorMapping, toSkiffError } from '../../gateway/errors.js';
import { HostError } from '../../infra/host-error.js';

// The user contract (the README's "Error codes"), written out rather than read from ERROR_STATUS.
const EXPECTED_STATUS: Record<ErrorCode, number> = {
  InvalidRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  QuotaExceeded: 403,
  FunctionNotFound: 404,
  NotFound: 404,
  NameTaken: 409,
  Conflict: 409,
  PayloadTooLarge: 413,
  TooManyRequests: 429,
  Internal: 500,
  FunctionError: 502,
  FunctionOutOfMemory: 502,
  FunctionResponseTooLarge: 502,
  Unavailable: 503,
  FunctionTimeout: 504,
  ImageNotFound: 404,
  ImageCorrupt: 502,
  RegistryUnavailable: 503,
};

/** A fastify schema-validation error, as fastify hands it to the error handler. */
function validationError(detail: { instancePath: string; message?: string; params: Record<string, unknown> } | undefined, context = 'body'): Error {
  const message = `${context}${detail?.instancePath ?? ''} ${detail?.message ?? ''}`;
  return Object.assign(new Error(message), {
    statusCode: 400,
    code: 'FST_ERR_VALIDATION',
    validation: detail ? [{ keyword: 'x', schemaPath: '#/x', ...detail }] : [],
    validationContext: context,
  });
}

t.test('each code has its status', async (t) => {
  t.same(ERROR_STATUS, EXPECTED_STATUS, 'the table');
  for (const [code, status] of Object.entries(EXPECTED_STATUS)) {
    const error = new SkiffError(code as ErrorCode, 'm');
    t.equal(error.status, status, `${code} → ${status}`);
    t.equal(error.code, code);
  }
});

t.test('a SkiffError is an Error with a name, a message and a cause', async (t) => {
  const cause = new Error('root');
  const error = new SkiffError('Unavailable', 'no capacity', { cause });
  t.equal(error.name, 'SkiffError');
  t.equal(error.message, 'no capacity');
  t.equal(error.cause, cause);
  t.notOk('cause' in new SkiffError('Unavailable', 'no cause'), 'no cause property without a cause');
});

t.test('invalidRequest names the field', async (t) => {
  const error = invalidRequest('memoryMb', 'memoryMb must be at least 64');
  t.equal(error.code, 'InvalidRequest');
  t.equal(error.status, 400);
  t.equal(error.field, 'memoryMb');
  t.same(error.toBody(), { code: 'InvalidRequest', message: 'memoryMb must be at least 64', field: 'memoryMb' });
});

t.test('toBody carries only what is set', async (t) => {
  const body = new SkiffError('FunctionNotFound', 'no function "x"').toBody();
  t.same(Object.keys(body).sort(), ['code', 'message']);
  t.same(body, { code: 'FunctionNotFound', message: 'no function "x"' });
});

t.test('toBody / fromBody round trip, through JSON', async (t) => {
  const original = new SkiffError('FunctionError', 'boom', {
    errorType: 'TypeError',
    stack: ['TypeError: boom', '    at handler (index.js:1:1)'],
    cause: new Error('not carried'),
  });
  const body = JSON.parse(JSON.stringify(original.toBody())) as ErrorBody;
  t.same(body, { code: 'FunctionError', message: 'boom', errorType: 'TypeError', stack: ['TypeError: boom', '    at handler (index.js:1:1)'] });
  const copy = SkiffError.fromBody(body);
  t.ok(copy instanceof SkiffError);
  t.equal(copy.code, 'FunctionError');
  t.equal(copy.status, 502);
  t.equal(copy.message, 'boom');
  t.equal(copy.errorType, 'TypeError');
  t.same(copy.handlerStack, body.stack);
  t.same(copy.toBody(), original.toBody());

  const withField = SkiffError.fromBody({ code: 'InvalidRequest', message: 'bad', field: 'name' });
  t.equal(withField.field, 'name');
  t.equal(withField.status, 400);
  t.same(withField.toBody(), { code: 'InvalidRequest', message: 'bad', field: 'name' });
});

t.test('fromBody turns an unknown code into Internal, keeping the message', async (t) => {
  const error = SkiffError.fromBody({ code: 'Bogus' as ErrorCode, message: 'from a newer worker' });
  t.equal(error.code, 'Internal');
  t.equal(error.status, 500);
  t.equal(error.message, 'from a newer worker');
});

t.test('fromBody turns an inherited property name into Internal', async (t) => {
  for (const code of ['constructor', 'toString', 'hasOwnProperty']) {
    const error = SkiffError.fromBody({ code: code as ErrorCode, message: 'm' });
    t.equal(error.code, 'Internal', `${code} becomes Internal`);
    t.equal(error.status, 500, `${code} gets status 500`);
  }
});

t.test('isSkiffError: real instances yes, look-alikes no', async (t) => {
  const error = new SkiffError('FunctionTimeout', 'too slow');
  t.equal(isSkiffError(error), true, 'a real instance');
  t.equal(isSkiffError(SkiffError.fromBody(error.toBody())), true, 'a rebuilt instance');
  t.equal(isSkiffError(JSON.parse(JSON.stringify(error))), false, 'a JSON copy');
  t.equal(isSkiffError(structuredClone(error)), false, 'a structured clone');
  t.equal(isSkiffError({ name: 'SkiffError', code: 'FunctionTimeout', message: 'too slow', status: 504 }), false, 'a plain object with the same fields');
  t.equal(isSkiffError(Object.assign(new Error('too slow'), { code: 'FunctionTimeout' })), false, 'an Error with a code');
  t.equal(isSkiffError(null), false);
  t.equal(isSkiffError(undefined), false);
  t.equal(isSkiffError('SkiffError'), false);
});

t.test('isSkiffError: the brand is shared across copies of the module', async (t) => {
  // Another build of errors.ts makes its brand with the same Symbol.for key.
  const fromAnotherCopy = Object.assign(new Error('x'), { [Symbol.for('skiff.error')]: true, code: 'Internal' });
  t.equal(isSkiffError(fromAnotherCopy), true);
  t.equal(isSkiffError(Object.assign(new Error('x'), { [Symbol('skiff.error')]: true })), false, 'a private symbol of the same name is not the brand');
});

t.test('isSkiffError: a spread copy is not a SkiffError', async (t) => {
  // A copy loses the prototype (status, toBody), so it must not pass for an error.
  const copy: unknown = { ...new SkiffError('FunctionNotFound', 'x') };
  t.equal(isSkiffError(copy), false, 'a spread copy');
  t.equal(isSkiffError(Object.assign({}, new SkiffError('FunctionNotFound', 'x'))), false, 'an Object.assign copy');
});

t.test('toSkiffError: a SkiffError passes through unchanged', async (t) => {
  const error = new SkiffError('TooManyRequests', 'slow down');
  t.equal(toSkiffError(error), error);
});

t.test('toSkiffError: a failed schema check names the field', async (t) => {
  const error = toSkiffError(validationError({ instancePath: '/memoryMb', message: 'must be >= 64', params: {} }));
  t.equal(error.code, 'InvalidRequest');
  t.equal(error.status, 400);
  t.equal(error.field, 'memoryMb');
  t.match(error.message, /memoryMb/);
  t.match(error.message, /must be >= 64/);
});

t.test('toSkiffError: a nested path becomes a dotted field', async (t) => {
  const error = toSkiffError(validationError({ instancePath: '/env/API_KEY', message: 'must be string', params: {} }));
  t.equal(error.field, 'env.API_KEY');
});

t.test('toSkiffError: a missing property is the field', async (t) => {
  const top = toSkiffError(validationError({ instancePath: '', message: "must have required property 'runtime'", params: { missingProperty: 'runtime' } }));
  t.equal(top.code, 'InvalidRequest');
  t.equal(top.field, 'runtime');
  t.match(top.message, /runtime/);
  const nested = toSkiffError(validationError({ instancePath: '/code', message: "must have required property 'zip'", params: { missingProperty: 'zip' } }));
  t.equal(nested.field, 'code.zip');
});

t.test('toSkiffError: an additional property is an unknown field', async (t) => {
  const error = toSkiffError(validationError({ instancePath: '', message: 'must NOT have additional properties', params: { additionalProperty: 'colour' } }));
  t.equal(error.code, 'InvalidRequest');
  t.equal(error.field, 'colour');
  t.equal(error.message, 'unknown field colour');
  const nested = toSkiffError(
    validationError({ instancePath: '/code', message: 'must NOT have additional properties', params: { additionalProperty: 'tar' } }),
  );
  t.equal(nested.field, 'code.tar');
  t.equal(nested.message, 'unknown field code.tar');
});

t.test('toSkiffError: a whole-value failure falls back to the validation context', async (t) => {
  const body = toSkiffError(validationError({ instancePath: '', message: 'must be object', params: {} }));
  t.equal(body.field, 'body');
  t.match(body.message, /must be object/);
  const query = toSkiffError(validationError({ instancePath: '', message: 'must be object', params: {} }, 'querystring'));
  t.equal(query.field, 'querystring');
  const empty = toSkiffError(validationError(undefined, 'params'));
  t.equal(empty.code, 'InvalidRequest');
  t.equal(empty.field, 'params');
});

t.test('toSkiffError: an oversized body is PayloadTooLarge 413', async (t) => {
  const error = toSkiffError(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
  t.equal(error.code, 'PayloadTooLarge');
  t.equal(error.status, 413);
  t.equal(error.field, 'body');
});

t.test('toSkiffError: invalid JSON is InvalidRequest on the body', async (t) => {
  for (const fastifyError of [new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY()]) {
    const error = toSkiffError(fastifyError);
    t.equal(error.code, 'InvalidRequest', fastifyError.code);
    t.equal(error.status, 400);
    t.equal(error.field, 'body');
    t.match(error.message, /JSON/);
  }
});

t.test('toSkiffError: an unsupported media type is InvalidRequest on content-type', async (t) => {
  const error = toSkiffError(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE('text/csv'));
  t.equal(error.code, 'InvalidRequest');
  t.equal(error.field, 'content-type');
});

t.test('toSkiffError: an unknown error is Internal 500 and hides its message', async (t) => {
  const original = new Error('ECONNREFUSED 10.0.0.3:5432 password=hunter2');
  const error = toSkiffError(original);
  t.equal(error.code, 'Internal');
  t.equal(error.status, 500);
  t.notMatch(error.message, /hunter2/);
  t.equal(error.cause, original, 'the cause is kept for the log');
  const crashed = toSkiffError(Object.assign(new Error('boom'), { statusCode: 500 }));
  t.equal(crashed.code, 'Internal', 'a 500 from fastify stays internal');
});

t.test('toSkiffError: another client error of fastify is InvalidRequest', async (t) => {
  const error = toSkiffError(Object.assign(new Error('Content-Length is wrong'), { statusCode: 400, code: 'FST_ERR_SOMETHING' }));
  t.equal(error.code, 'InvalidRequest');
  t.equal(error.message, 'Content-Length is wrong');
});

t.test('isSkiffError with a code: tested by kind, never by message', async (t) => {
  const timeout = new SkiffError('FunctionTimeout', 'function timed out after 10 ms');
  t.equal(isSkiffError(timeout, 'FunctionTimeout'), true);
  t.equal(isSkiffError(timeout, 'FunctionResponseTooLarge'), false, 'another code');
  t.equal(isSkiffError(new SkiffError('FunctionError', 'FunctionTimeout'), 'FunctionTimeout'), false, 'the message says nothing');
  t.equal(isSkiffError(Object.assign(new Error('x'), { code: 'FunctionTimeout' }), 'FunctionTimeout'), false, 'a look-alike');
  t.equal(isSkiffError(new HostError('channel-closed', 'runtime exited'), 'Internal'), false, 'an internal error is no SkiffError');
});

t.test('toSkiffError: an internal HostError no boundary converted is Internal 500, its cause kept for the log', async (t) => {
  const host = new HostError('mount', 'mount --bind /secret/path failed (code 32): permission denied', { command: 'mount --bind /secret/path' });
  const error = toSkiffError(host);
  t.equal(error.code, 'Internal');
  t.equal(error.status, 500);
  t.notMatch(error.message, /secret/, 'its message stays in the log');
  t.equal(error.cause, host);
});

t.test('the gateway answers with the one mapping: errors thrown in routes, and unknown routes', async (t) => {
  const app = Fastify({ logger: false });
  registerErrorMapping(app);
  app.get('/timeout', async () => {
    throw new SkiffError('FunctionTimeout', 'function timed out after 10 ms');
  });
  app.get('/busy', async () => {
    throw new SkiffError('TooManyRequests', 'try again', { retryAfterSeconds: 2.5 });
  });
  app.get('/host', async () => {
    throw new HostError('oci-runtime', 'runc run s1 failed (code 1): no space left on device');
  });
  t.teardown(() => app.close());
  for (const [url, code] of [
    ['/timeout', 'FunctionTimeout'],
    ['/busy', 'TooManyRequests'],
    ['/host', 'Internal'],
    ['/nowhere', 'NotFound'],
  ] as const) {
    const answer = await app.inject({ method: 'GET', url });
    t.equal(answer.statusCode, ERROR_STATUS[code], `${url}: ${code} ${ERROR_STATUS[code]}`);
    t.equal((answer.json() as { error: ErrorBody }).error.code, code);
  }
  t.equal((await app.inject({ method: 'GET', url: '/busy' })).headers['retry-after'], '3', 'Retry-After, rounded up');
  t.same((await app.inject({ method: 'GET', url: '/nowhere?x=1' })).json(), { error: { code: 'NotFound', message: 'no route GET /nowhere' } });
});
