/**
 * The short warm path's map: which node holds a free warm instance of a function version, as a
 * gateway sees it, so that a synchronous call can go straight to that node's queue instead of
 * through the shared queue and a scheduler (one process hop and three Redis round trips fewer).
 *
 * The map is the fleet's heartbeats (read in the background every SKIFF_FLEET_REFRESH_MS by
 * {@link WarmRoutes.refresh}, never on a call's path) corrected by what this gateway itself knows
 * since each node's last heartbeat: a call it sent takes one free slot until it ends; a call that
 * ended on a node (sent straight or placed by a scheduler) leaves its instance free there, until a
 * heartbeat says so itself. Several gateways may count on the same slot: the node takes a straight
 * call only if it has a free instance at once, and hands it to the scheduler otherwise
 * (worker/calls/node-queue.ts), so a wrong guess costs a hop, never a cold start the scheduler did
 * not place. Only `active` nodes without an operator's order are routed to.
 */
import type { FleetMember } from './registry.js';
import { placedState } from './orders.js';

/** What the map needs of a function version. */
export interface WarmTarget {
  versionId: string;
  /** Calls one instance takes at once. */
  concurrency: number;
}

/** A call sent straight to a node, to hand back to {@link WarmRoutes.ended} when it ends. */
export interface WarmRoute {
  nodeId: string;
  versionId: string;
  /** When it was sent (ms): a heartbeat from before this did not see it. */
  sentAt: number;
}

/** How a call ended, as far as the map cares: where it ran, and whether its instance lives on. */
export interface CallEnd {
  /** The node that ran it; absent: it never reached an instance. */
  workerId?: string | undefined;
  /** The instance it ran on is still there (the call succeeded, or the handler failed normally). */
  instanceKept: boolean;
}

interface NodeSlots {
  /** The heartbeat's time: corrections older than it are in it already. */
  at: number;
  /** Idle instances by version. */
  idle: Record<string, number>;
  /** Free call slots on busy instances (concurrency above 1) by version. */
  slots: Record<string, number>;
}

/** Slots freed since the heartbeats remembered at most (a node's heartbeat comes far sooner). */
const MAX_FREED = 20_000;

const slotKey = (nodeId: string, versionId: string): string => `${nodeId}\u0000${versionId}`;

export class WarmRoutes {
  private nodes = new Map<string, NodeSlots>();
  /** Straight calls under way. */
  private readonly sent = new Set<WarmRoute>();
  /** Slots seen freed (a call ended) since their node's heartbeat. */
  private freed: Array<{ nodeId: string; versionId: string; at: number }> = [];
  /** By node and version: straight calls sent since the node's heartbeat, less slots freed since. */
  private taken = new Map<string, number>();

  /** Takes in the fleet as its registry lists it (members with their orders; the dead are skipped). */
  refresh(members: readonly FleetMember[]): void {
    const nodes = new Map<string, NodeSlots>();
    for (const { beat, order, alive } of members) {
      if (alive && placedState(beat, order) === 'active') nodes.set(beat.id, { at: beat.at, idle: beat.idle, slots: beat.slots ?? {} });
    }
    this.nodes = nodes;
    this.freed = this.freed.filter((f) => f.at > (nodes.get(f.nodeId)?.at ?? Infinity));
    const taken = new Map<string, number>();
    const add = (nodeId: string, versionId: string, n: number): void => {
      const key = slotKey(nodeId, versionId);
      taken.set(key, (taken.get(key) ?? 0) + n);
    };
    for (const route of this.sent) if (route.sentAt >= (nodes.get(route.nodeId)?.at ?? Infinity)) add(route.nodeId, route.versionId, 1);
    for (const f of this.freed) add(f.nodeId, f.versionId, -1);
    this.taken = taken;
  }

  /**
   * A node to send a call of `fn` straight to, with one of its free slots taken for the call;
   * undefined: none known, let a scheduler place it.
   */
  take(fn: WarmTarget, now = Date.now()): WarmRoute | undefined {
    let best: { nodeId: string; free: number } | undefined;
    for (const [nodeId, node] of this.nodes) {
      const free = (node.idle[fn.versionId] ?? 0) * fn.concurrency + (node.slots[fn.versionId] ?? 0) - (this.taken.get(slotKey(nodeId, fn.versionId)) ?? 0);
      if (free > 0 && (best === undefined || free > best.free)) best = { nodeId, free };
    }
    if (best === undefined) return undefined;
    const route: WarmRoute = { nodeId: best.nodeId, versionId: fn.versionId, sentAt: now };
    this.sent.add(route);
    this.count(route.nodeId, route.versionId, 1);
    return route;
  }

  /**
   * A call of `versionId` ended: a straight call gives its slot back; any call that ran on an
   * instance kept leaves a free slot there, which the node's next heartbeat will show.
   */
  ended(versionId: string, route: WarmRoute | undefined, end: CallEnd, now = Date.now()): void {
    if (route !== undefined && this.sent.delete(route)) {
      const node = this.nodes.get(route.nodeId);
      // Sent after the node's heartbeat, its slot was counted off that heartbeat's: giving it back
      // is all, if the call ran there and its instance lives on; if not, the slot stays counted
      // taken until the next heartbeat tells. Sent before, the heartbeat saw it busy: a slot
      // freed now is one the heartbeat lacks (below).
      if (node !== undefined && route.sentAt >= node.at && end.workerId === route.nodeId) {
        if (end.instanceKept) this.count(route.nodeId, versionId, -1);
        return;
      }
    }
    if (end.workerId === undefined || !end.instanceKept || !this.nodes.has(end.workerId)) return;
    this.freed.push({ nodeId: end.workerId, versionId, at: now });
    this.count(end.workerId, versionId, -1);
    if (this.freed.length > MAX_FREED) this.freed.shift();
  }

  private count(nodeId: string, versionId: string, n: number): void {
    const key = slotKey(nodeId, versionId);
    this.taken.set(key, (this.taken.get(key) ?? 0) + n);
  }
}
