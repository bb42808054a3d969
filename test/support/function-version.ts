/** A function version for unit tests: small, of tenant `t1`, with what the test says it differs in. */
import type { FunctionVersion } from '../../infra/functions/version.js';

export function functionVersion(over: Partial<FunctionVersion> = {}): FunctionVersion {
  const name = over.name ?? 'f';
  return {
    name,
    version: 1,
    handler: 'index.handler',
    memoryMb: 128,
    timeoutMs: 1000,
    env: {},
    versionId: `${name}-v${over.version ?? 1}`,
    tenant: 't1',
    runtime: 'nodejs20',
    codeSha256: null,
    image: `skiff/functions/${name}@sha256:1`,
    concurrency: 1,
    idleTimeoutMs: 60_000,
    minWarm: 0,
    maxInstances: 10,
    auth: 'key',
    network: 'none',
    idempotent: false,
    schedules: [],
    cors: null,
    invokeMode: 'BUFFERED',
    ...over,
  };
}
