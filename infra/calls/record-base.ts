/**
 * What every invocation record made from a job names. The records are written through
 * infra/db/invocation-records.ts by whoever a call's state changes with: the gateway (`queued`),
 * the worker (`running`) and the ends of a call (sync-calls.ts, async-calls.ts).
 */
import type { InvocationJob } from '../queue/jobs.js';

/** What every record of a job's outcome names: the call, its function and tenant, and its caller. */
export function recordBase(job: InvocationJob): { id: string; functionName: string; functionVersion: number; tenant: string; callerKeyId?: string } {
  return {
    id: job.id,
    functionName: job.fn.name,
    functionVersion: job.fn.version,
    tenant: job.fn.tenant,
    ...(job.callerKeyId === undefined ? {} : { callerKeyId: job.callerKeyId }),
  };
}
