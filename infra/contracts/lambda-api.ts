/**
 * Types of the AWS Lambda API as Skiff serves it (gateway/lambda/, docs/LAMBDA.md): what an AWS
 * SDK sends and reads, named as Lambda's API reference names them.
 */

/** `X-Amz-Invocation-Type` of Invoke; RequestResponse when absent. */
export const INVOCATION_TYPES = ['RequestResponse', 'Event', 'DryRun'] as const;
export type InvocationType = (typeof INVOCATION_TYPES)[number];

/** The `__type` (and `x-amzn-ErrorType`) of the error responses Skiff gives on the Lambda routes. */
export type LambdaErrorType =
  | 'InvalidParameterValueException'
  | 'InvalidRequestContentException'
  | 'ResourceNotFoundException'
  | 'RequestTooLargeException'
  | 'TooManyRequestsException'
  | 'AccessDeniedException'
  | 'UnrecognizedClientException'
  | 'InvalidSignatureException'
  | 'MissingAuthenticationTokenException'
  | 'ServiceException';

/** The JSON body of an error response: the SDK reads `__type` (after `x-amzn-ErrorType`) and `message`. */
export interface LambdaErrorBody {
  __type: LambdaErrorType;
  message: string;
  /** Lambda's own field: who is at fault. */
  Type: 'User' | 'Service';
}

/** The payload of a call whose function failed (200, `X-Amz-Function-Error: Unhandled`). */
export interface FunctionErrorPayload {
  errorMessage: string;
  errorType: string;
  stackTrace: string[];
}

/** A function named in a Lambda path: a plain name, or a full or partial ARN, with its qualifier. */
export interface LambdaFunctionRef {
  name: string;
  /** The account of an ARN (Skiff's tenant); undefined for a plain name. */
  account: string | undefined;
  /** A version number, or `$LATEST` (the current version); undefined when none was named. */
  qualifier: string | undefined;
}
