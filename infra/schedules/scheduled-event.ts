/**
 * The event a schedule's tick hands the function: EventBridge's `Scheduled Event`, as a Lambda
 * function targeted by an EventBridge schedule receives it, so handlers written for one run
 * unchanged. `account` is the function's tenant; `resources` names the schedule.
 */
export interface ScheduledEvent {
  version: '0';
  id: string;
  'detail-type': 'Scheduled Event';
  source: 'aws.events';
  account: string;
  /** When the tick fell due (UTC, ISO 8601; whole seconds as EventBridge writes them when it has no ms). */
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, never>;
}

/** The schedule's name in its event: `arn:aws:events:<region>:<tenant>:rule/<function>-schedule-<n>`, n from 1. */
export function scheduleArn(region: string, tenant: string, functionName: string, position: number): string {
  return `arn:aws:events:${region}:${tenant}:rule/${functionName}-schedule-${position + 1}`;
}

export function scheduledEvent(tick: { id: string; tenant: string; region: string; functionName: string; position: number; dueAt: number }): ScheduledEvent {
  return {
    version: '0',
    id: tick.id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: tick.tenant,
    time: new Date(tick.dueAt).toISOString().replace(/\.000Z$/, 'Z'),
    region: tick.region,
    resources: [scheduleArn(tick.region, tick.tenant, tick.functionName, tick.position)],
    detail: {},
  };
}
