/**
 * The pure parts of the Lambda Invoke API: Skiff's error codes as Lambda's exception types, a
 * failed function as Lambda's error payload, and FunctionName/Qualifier parsing.
 */
import t from 'tap';
import { SkiffError, isSkiffError } from '../../infra/errors.js';
import { functionErrorPayload, lambdaError } from '../../gateway/lambda/errors.js';
import { parseFunctionRef, qualifiedVersion } from '../../gateway/lambda/function-ref.js';

t.test("Skiff's codes answer as Lambda's exceptions", async (t) => {
  const cases: Array<[SkiffError, number, string]> = [
    [new SkiffError('InvalidRequest', 'x', { field: 'body' }), 400, 'InvalidRequestContentException'],
    [new SkiffError('InvalidRequest', 'x', { field: 'Qualifier' }), 400, 'InvalidParameterValueException'],
    [new SkiffError('Unauthorized', 'x'), 403, 'MissingAuthenticationTokenException'],
    [new SkiffError('Unauthorized', 'x', { field: 'Credential' }), 403, 'UnrecognizedClientException'],
    [new SkiffError('Unauthorized', 'x', { field: 'Signature' }), 403, 'InvalidSignatureException'],
    [new SkiffError('Unauthorized', 'x', { field: 'X-Amz-Date' }), 403, 'InvalidSignatureException'],
    [new SkiffError('Forbidden', 'x'), 403, 'AccessDeniedException'],
    [new SkiffError('FunctionNotFound', 'x'), 404, 'ResourceNotFoundException'],
    [new SkiffError('PayloadTooLarge', 'x'), 413, 'RequestTooLargeException'],
    [new SkiffError('TooManyRequests', 'x'), 429, 'TooManyRequestsException'],
    [new SkiffError('Unavailable', 'x'), 503, 'ServiceException'],
    [new SkiffError('Internal', 'x'), 500, 'ServiceException'],
  ];
  for (const [error, status, type] of cases) t.same(lambdaError(error), { status, type }, `${error.code} ${error.field ?? ''}`);
});

t.test("a failed function is Lambda's error payload; other errors are not", async (t) => {
  t.same(functionErrorPayload(new SkiffError('FunctionError', 'boom', { errorType: 'TypeError', stack: ['at x'] })), {
    errorMessage: 'boom',
    errorType: 'TypeError',
    stackTrace: ['at x'],
  });
  t.match(functionErrorPayload(new SkiffError('FunctionTimeout', 'slow')), { errorType: 'Sandbox.Timedout', stackTrace: [] });
  t.match(functionErrorPayload(new SkiffError('FunctionOutOfMemory', 'big')), { errorType: 'Runtime.OutOfMemory' });
  t.equal(functionErrorPayload(new SkiffError('Unavailable', 'no')), undefined);
});

t.test('FunctionName: a name, name:qualifier, partial and full ARNs', async (t) => {
  t.same(parseFunctionRef('hello', undefined), { name: 'hello', account: undefined, qualifier: undefined });
  t.same(parseFunctionRef('hello:3', undefined), { name: 'hello', account: undefined, qualifier: '3' });
  t.same(parseFunctionRef('acme:function:hello', '$LATEST'), { name: 'hello', account: 'acme', qualifier: '$LATEST' });
  t.same(parseFunctionRef('arn:aws:lambda:eu-west-1:acme:function:hello:7', undefined), { name: 'hello', account: 'acme', qualifier: '7' });
  t.equal(qualifiedVersion(parseFunctionRef('hello', '12')), 12);
  t.equal(qualifiedVersion(parseFunctionRef('hello', '$LATEST')), undefined);
  const refused = (raw: string, query?: string): string | undefined => {
    try {
      parseFunctionRef(raw, query);
    } catch (error) {
      if (isSkiffError(error, 'InvalidRequest')) return error.field;
      throw error;
    }
    return undefined;
  };
  t.equal(refused('Hello'), 'FunctionName', 'not a Skiff name');
  t.equal(refused('arn:aws:s3:::bucket'), 'FunctionName', 'not a Lambda ARN');
  t.equal(refused('arn:aws:lambda:r:acme:function:hello:1:2'), 'FunctionName', 'too many parts');
  t.equal(refused('hello', 'prod'), 'Qualifier', 'an alias');
  t.equal(refused('hello:1', '2'), 'Qualifier', 'two qualifiers that differ');
  t.equal(refused('x'.repeat(200)), 'FunctionName', 'too long');
});
