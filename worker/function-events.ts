/**
 * What the node does when a function is deployed or deleted (the gateway publishes it on the
 * `functionEvents` channel): instances of a deleted function, or of a version a deploy replaced,
 * are retired; a deploy also wakes the warm keeper (a new version's minWarm instances are made at
 * once, not at its next check, and its warm owner preloads one instance of it) and pulls the new
 * image ahead of its first call.
 */
import type { Redis } from 'ioredis';
import type { FunctionEvent } from '../infra/queue/jobs.js';
import type { InstanceSet } from './instances/instance-set.js';

export interface FunctionEventReactions {
  instances: Pick<InstanceSet, 'retireFunction'>;
  warmKeeper: { check(): void; deployed(name: string, version: number): void };
  /** Pulls a newly deployed version's image ahead of its first call. */
  prefetch?: (image: string) => void;
}

export function reactToFunctionEvent(o: FunctionEventReactions, event: FunctionEvent): void {
  if (event.type === 'deleted') o.instances.retireFunction(event.name);
  else {
    // A new version: instances of older versions get no new calls; retire them.
    o.instances.retireFunction(event.name, event.version);
    o.warmKeeper.check();
    o.warmKeeper.deployed(event.name, event.version);
    if (event.image) o.prefetch?.(event.image);
  }
}

/** Subscribes `subscriber` (a connection used only for subscriptions) to the channel of function events. */
export async function listenToFunctionEvents(subscriber: Redis, channel: string, react: (event: FunctionEvent) => void): Promise<void> {
  await subscriber.subscribe(channel);
  subscriber.on('message', (from: string, message: string) => {
    if (from === channel) react(JSON.parse(message) as FunctionEvent);
  });
}
