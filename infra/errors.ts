/**
 * The few kinds of error Skiff reports, each with a stable code a user can act on and one HTTP
 * status. Callers test the code (`isSkiffError(error, 'FunctionTimeout')`), never the message.
 * The brand makes `isSkiffError` work across copies of this module (e.g. a test and the app
 * loading different builds).
 *
 * ERROR_STATUS is the one mapping of codes to HTTP statuses; gateway/errors.ts is the one place
 * that answers with it. Failures of the machinery beneath a call are HostErrors
 * (infra/host-error.ts), turned into a SkiffError only where their meaning for the user is known.
 */
export const ERROR_STATUS = {
  InvalidRequest: 400,
  Unauthorized: 401,
  /** The key is valid but its role may not do this (or it is limited to other functions). */
  Forbidden: 403,
  /** A tenant quota (functions, instances, memory) does not allow this. */
  QuotaExceeded: 403,
  FunctionNotFound: 404,
  NotFound: 404,
  /** A function name another tenant owns: names are unique platform-wide, like bucket names. */
  NameTaken: 409,
  /** The request conflicts with what exists (a tenant that still owns functions, a name in use). */
  Conflict: 409,
  PayloadTooLarge: 413,
  TooManyRequests: 429,
  Internal: 500,
  FunctionError: 502,
  FunctionOutOfMemory: 502,
  /** The function's result (or one protocol frame or log line) is over its limit. */
  FunctionResponseTooLarge: 502,
  Unavailable: 503,
  FunctionTimeout: 504,
  /** An image (or a layer of it) the registry does not have. */
  ImageNotFound: 404,
  /** A registry served bytes that do not match their digest, or a layer that cannot be unpacked safely. */
  ImageCorrupt: 502,
  /** The image registry cannot be reached or refused the credentials. */
  RegistryUnavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

const BRAND = Symbol.for('skiff.error');

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** The request field at fault, for InvalidRequest. */
  field?: string;
  /** For FunctionError: the error the handler threw. */
  errorType?: string;
  stack?: string[];
}

export class SkiffError extends Error {
  declare readonly [BRAND]: true;
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly errorType: string | undefined;
  readonly handlerStack: string[] | undefined;
  /** For TooManyRequests: when to try again (the Retry-After header). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; field?: string; errorType?: string; stack?: string[]; retryAfterSeconds?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // Not enumerable: a spread copy of an error must not pass for one.
    Object.defineProperty(this, BRAND, { value: true, enumerable: false });
    this.name = 'SkiffError';
    this.code = code;
    this.field = options.field;
    this.errorType = options.errorType;
    this.handlerStack = options.stack;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) body.field = this.field;
    if (this.errorType !== undefined) body.errorType = this.errorType;
    if (this.handlerStack !== undefined) body.stack = this.handlerStack;
    return body;
  }

  static fromBody(body: ErrorBody): SkiffError {
    const options: { field?: string; errorType?: string; stack?: string[] } = {};
    if (body.field !== undefined) options.field = body.field;
    if (body.errorType !== undefined) options.errorType = body.errorType;
    if (body.stack !== undefined) options.stack = body.stack;
    return new SkiffError(Object.hasOwn(ERROR_STATUS, body.code) ? body.code : 'Internal', body.message, options);
  }
}

/** Whether `value` is a SkiffError, and of `code` if one is given. */
export function isSkiffError(value: unknown, code?: ErrorCode): value is SkiffError {
  if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (value as SkiffError).code === code;
}

export const invalidRequest = (field: string, message: string, cause?: unknown): SkiffError => new SkiffError('InvalidRequest', message, { field, cause });
