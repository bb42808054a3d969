/** What the gateway's routes are given: every dependency passed in, nothing global. */
import type { Redis } from 'ioredis';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import type { ApiKeys } from '../infra/db/api-keys.js';
import type { DeadLetters } from '../infra/db/dead-letters.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { LogStore } from '../infra/db/log-store.js';
import type { KeySpace } from '../infra/queue/names.js';
import type { FunctionStore } from '../infra/db/function-store.js';
import type { Dispatcher } from './invocations/dispatcher.js';
import type { FunctionCache } from './invocations/function-cache.js';
import type { GatewayMetrics } from './metrics.js';
import type { FunctionImages } from './images/function-images.js';
import type { TenantStore } from '../infra/db/tenants.js';
import type { AuditLog } from '../infra/db/audit-log.js';
import type { TenantQuotaCache } from './invocations/tenant-quota-cache.js';
import type { JobSchedulers } from '../infra/schedules/job-schedulers.js';

export interface GatewayContext {
  config: Readonly<Config>;
  keys: KeySpace;
  functions: FunctionStore;
  /** Current versions for the call path, kept fresh by function events. */
  current: FunctionCache;
  dispatcher: Dispatcher;
  records: InvocationRecords;
  logs: LogStore;
  apiKeys: ApiKeys;
  deadLetters: DeadLetters;
  /** Connection for publishing function events. */
  redis: Redis;
  tracer: Tracer;
  metrics: GatewayMetrics;
  /** Builds or resolves the image of each deploy. */
  images: FunctionImages;
  tenants: TenantStore;
  audit: AuditLog;
  /** Tenants' effective quotas for the call path, without a query per call. */
  tenantQuotas: TenantQuotaCache;
  /** Functions' schedules in Redis: a deploy, rollback or delete changes them at once. */
  schedules: JobSchedulers;
  /** The absolute URL that calls a function, on the functions' own origin. */
  functionUrl(name: string): string;
  /**
   * The origin serving `/fn/<name>` (gateway/http/function-origin.ts), with the bound port once
   * the functions listener listens (the configured port may be 0).
   */
  functionsOrigin(): string;
}
