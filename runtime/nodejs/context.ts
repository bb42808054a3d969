/**
 * The Lambda-compatible view a handler gets of its function: the `context` argument and the
 * reserved environment variables. Code written for AWS Lambda reads these, so names and formats
 * follow Lambda's (e.g. memoryLimitInMB is a string there too).
 */
import { randomBytes } from 'node:crypto';
import type { FunctionSpec, InvokeMessage } from '../protocol/messages.js';

/** The node-style callback handed to callback-style handlers; also backs context.done/succeed/fail. */
export type Callback = (error?: unknown, value?: unknown) => void;

export type Handler = (event: unknown, context: LambdaContext, callback: Callback) => unknown;

export interface LambdaContext {
  awsRequestId: string;
  functionName: string;
  functionVersion: string;
  memoryLimitInMB: string;
  invokedFunctionArn: string;
  logGroupName: string;
  logStreamName: string;
  /** Kept for compatibility; results are sent as soon as they exist, since other invocations may share the loop. */
  callbackWaitsForEmptyEventLoop: boolean;
  /** W3C trace context of this invocation, when the caller had one. */
  traceparent: string | undefined;
  identity: undefined;
  clientContext: undefined;
  getRemainingTimeInMillis(): number;
  done: Callback;
  succeed(value?: unknown): void;
  fail(error?: unknown): void;
}

/** The per-function part of every context, computed once at init. */
export interface FunctionIdentity {
  functionName: string;
  functionVersion: string;
  memoryLimitInMB: string;
  invokedFunctionArn: string;
  logGroupName: string;
  logStreamName: string;
}

export function functionIdentity(spec: FunctionSpec, now = new Date()): FunctionIdentity {
  const version = String(spec.version);
  return {
    functionName: spec.name,
    functionVersion: version,
    memoryLimitInMB: String(spec.memoryMb),
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${spec.name}`,
    logGroupName: `/skiff/${spec.name}`,
    logStreamName: logStreamName(version, now),
  };
}

/** Lambda's shape, `YYYY/MM/DD/[version]id`, with a random id per sandbox. */
function logStreamName(version: string, now: Date): string {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '/');
  return `${day}/[${version}]${randomBytes(16).toString('hex')}`;
}

/**
 * The function's own variables plus Lambda's reserved ones. Reserved names win over the
 * function's (Lambda refuses to let functions set them); TZ is only a default.
 */
export function functionEnvironment(
  spec: FunctionSpec,
  identity: FunctionIdentity,
  taskRoot: string,
  runtimeDir: string,
  inheritedTz: string | undefined,
  runtime: string,
): Record<string, string> {
  return {
    TZ: inheritedTz ?? 'UTC',
    ...spec.env,
    AWS_EXECUTION_ENV: `AWS_Lambda_${runtime}.x`,
    AWS_LAMBDA_FUNCTION_NAME: identity.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: identity.functionVersion,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: identity.memoryLimitInMB,
    AWS_LAMBDA_LOG_GROUP_NAME: identity.logGroupName,
    AWS_LAMBDA_LOG_STREAM_NAME: identity.logStreamName,
    LAMBDA_TASK_ROOT: taskRoot,
    LAMBDA_RUNTIME_DIR: runtimeDir,
    _HANDLER: spec.handler,
  };
}

export function createContext(identity: FunctionIdentity, invoke: InvokeMessage, complete: Callback): LambdaContext {
  return {
    ...identity,
    awsRequestId: invoke.id,
    callbackWaitsForEmptyEventLoop: true,
    traceparent: invoke.traceparent,
    identity: undefined,
    clientContext: undefined,
    getRemainingTimeInMillis: () => Math.max(0, invoke.deadlineMs - Date.now()),
    done: complete,
    succeed: (value) => complete(null, value),
    // Lambda reports context.fail() with no argument as a failure too, so never pass a nullish error.
    fail: (error) => complete(error ?? new Error('context.fail() called without an error')),
  };
}
