/**
 * Names of every queue, key and channel in Redis, in one place. All carry the configured prefix,
 * so several Skiff installations (and test runs) share one Redis without meeting.
 */
export interface KeySpace {
  /** BullMQ prefix of every queue. */
  bullPrefix: string;
  /** Queue the gateways add invocations to and the schedulers take them from. */
  invocationQueue: string;
  /** Queue of functions' schedules: BullMQ job schedulers add one tick job each time one falls due (infra/schedules/). */
  scheduleQueue: string;
  /** Queue of one worker node. */
  nodeQueue(workerId: string): string;
  /** Stream of the calls gateways send straight to one worker node's warm instances (infra/queue/straight-calls.ts). */
  straightCalls(workerId: string): string;
  /** Hash of worker id → heartbeat JSON. */
  workers: string;
  /** Hash of worker id → the state operators asked for: cordoned, draining, or removed. */
  workerOrders: string;
  /** Stream a gateway reads the outcomes of its synchronous calls from (infra/queue/replies.ts). */
  replies(gatewayId: string): string;
  /** Key holding one large outcome for a short while; its reply message only points here (replies.ts). */
  reply(invocationId: string): string;
  /** Redis stream of one streamed call's response, written by its worker, read by its gateway (response-stream.ts). */
  responseStream(invocationId: string): string;
  /** Pub/sub channel announcing function changes (deploy, delete) to workers. */
  functionEvents: string;
  /** Pub/sub channel of a function's new log lines, for `logs?follow=1`. */
  logs(functionName: string): string;
  /** Prefix of the per-tenant counters of calls per second (gateway/invocations/call-limit.ts). */
  callsPerSecond: string;
  /** Hash of kind (versions, invocations, logs) → rows tenants' bounds removed, for /metrics. */
  pruned: string;
  /** Hash of what the reconciler saw (scheduler/reconciler.ts): `requeued` (async calls whose job was
   *  gone, queued again), `duplicates` (runs of an async call that ended after the call had ended). */
  reconciled: string;
}

export function keySpace(prefix: string): KeySpace {
  return {
    bullPrefix: `${prefix}:bull`,
    invocationQueue: 'invocations',
    scheduleQueue: 'schedules',
    nodeQueue: (workerId) => `node-${workerId}`,
    straightCalls: (workerId) => `${prefix}:straight:${workerId}`,
    workers: `${prefix}:workers`,
    workerOrders: `${prefix}:worker-orders`,
    replies: (gatewayId) => `${prefix}:replies:${gatewayId}`,
    reply: (invocationId) => `${prefix}:reply:${invocationId}`,
    responseStream: (invocationId) => `${prefix}:response-stream:${invocationId}`,
    functionEvents: `${prefix}:function-events`,
    logs: (functionName) => `${prefix}:logs:${functionName}`,
    callsPerSecond: `${prefix}:calls-per-second:`,
    pruned: `${prefix}:pruned`,
    reconciled: `${prefix}:reconciled`,
  };
}
