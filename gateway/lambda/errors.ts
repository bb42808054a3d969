/**
 * How the Lambda routes answer errors: as Lambda does, so an AWS SDK throws the exception it
 * knows (`ResourceNotFoundException`, `TooManyRequestsException`...). The SDK reads the type from
 * `x-amzn-ErrorType`, then `__type` in the JSON body, and the message from `message`. The one
 * mapping of Skiff's codes (infra/errors.ts) to Lambda's types is here; a failure of the function
 * itself is not an error of the API but a 200 with `X-Amz-Function-Error` (`functionErrorPayload`).
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ErrorCode } from '../../infra/errors.js';
import type { SkiffError } from '../../infra/errors.js';
import type { FunctionErrorPayload, LambdaErrorBody, LambdaErrorType } from '../../infra/contracts/lambda-api.js';
import { toSkiffError } from '../errors.js';

/** Codes a call's function ends with: answered 200 `X-Amz-Function-Error: Unhandled`, with Lambda's errorType. */
const FUNCTION_ERROR_TYPES: Partial<Record<ErrorCode, string>> = {
  FunctionTimeout: 'Sandbox.Timedout',
  FunctionOutOfMemory: 'Runtime.OutOfMemory',
  FunctionResponseTooLarge: 'Function.ResponseSizeTooLarge',
};

/** The payload of a call whose function failed, or undefined when `error` is no failure of the function. */
export function functionErrorPayload(error: SkiffError): FunctionErrorPayload | undefined {
  if (error.code === 'FunctionError') return { errorMessage: error.message, errorType: error.errorType ?? 'Error', stackTrace: error.handlerStack ?? [] };
  const errorType = FUNCTION_ERROR_TYPES[error.code];
  return errorType === undefined ? undefined : { errorMessage: error.message, errorType, stackTrace: [] };
}

/** Lambda's status and type for a Skiff error. */
export function lambdaError(error: SkiffError): { status: number; type: LambdaErrorType } {
  switch (error.code) {
    case 'InvalidRequest':
      return { status: 400, type: error.field === 'body' ? 'InvalidRequestContentException' : 'InvalidParameterValueException' };
    case 'Unauthorized':
      if (error.field === 'Credential') return { status: 403, type: 'UnrecognizedClientException' };
      if (error.field === undefined) return { status: 403, type: 'MissingAuthenticationTokenException' };
      return { status: 403, type: 'InvalidSignatureException' };
    case 'Forbidden':
    case 'QuotaExceeded':
      return { status: 403, type: 'AccessDeniedException' };
    case 'FunctionNotFound':
    case 'NotFound':
      return { status: 404, type: 'ResourceNotFoundException' };
    case 'PayloadTooLarge':
      return { status: 413, type: 'RequestTooLargeException' };
    case 'TooManyRequests':
      return { status: 429, type: 'TooManyRequestsException' };
    case 'Unavailable':
      return { status: 503, type: 'ServiceException' };
    default:
      return { status: 500, type: 'ServiceException' };
  }
}

export function sendLambdaError(reply: FastifyReply, error: SkiffError): FastifyReply {
  const { status, type } = lambdaError(error);
  const body: LambdaErrorBody = { __type: type, message: error.message, Type: status >= 500 ? 'Service' : 'User' };
  // The SDK reads it as the exception's retryAfterSeconds.
  if (error.code === 'TooManyRequests') void reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds ?? 1))));
  return reply.status(status).header('x-amzn-errortype', type).type('application/json').send(body);
}

/** Errors of the routes in `scope` answered as Lambda does (Fastify's own ones translated first). */
export function registerLambdaErrors(scope: FastifyInstance): void {
  scope.setErrorHandler((error: FastifyError, request, reply) => {
    const skiff = toSkiffError(error);
    if (skiff.code === 'Internal') request.log.error({ err: error }, 'Lambda API request failed');
    void sendLambdaError(reply, skiff);
  });
}
