/**
 * The scheduler's view of the worker nodes: the live ones of the fleet's registry
 * (infra/fleet/registry.ts; a node past the heartbeat TTL is gone), each with its order, plus
 * this scheduler's own placements since their last heartbeats.
 */
import type { TenantUsage } from '../infra/tenancy/instance-limits.js';
import type { FleetRegistry } from '../infra/fleet/registry.js';
import { placedState } from '../infra/fleet/orders.js';
import { addUsage, afterPlacement, decide, evictedBy, tenantChange, type Decision, type Demand, type NodeView, type Placement } from './placement.js';

/** What one of this scheduler's placements changed of its tenant's usage on a node, and when. */
interface TenantGuess {
  nodeId: string;
  tenant: string;
  at: number;
  change: TenantUsage;
  /** Idle instances of the tenant it ordered evicted. */
  evicted: number;
}

/** Placements remembered for tenants' usage at most (a node's heartbeat comes far sooner). */
const MAX_GUESSES = 20_000;

export class Fleet {
  private nodes: NodeView[] = [];
  private readAt = 0;
  /** Whether `nodes` holds this scheduler's own guesses (placements) on top of the heartbeats. */
  private guessed = false;
  /**
   * Placements whose node has not sent a heartbeat since: tenants' usage from the heartbeats
   * plus these, so a tenant's quota holds between heartbeats even though the view is read again
   * far more often than they come. (Memory is not counted so: a node looking full for want of a
   * heartbeat would make calls wait; it is read again instead.)
   */
  private guesses: TenantGuess[] = [];

  constructor(
    /** Heartbeats and operators' orders: a cordoned, draining or removed node gets nothing at once. */
    private readonly registry: FleetRegistry,
    private readonly refreshMs: number,
  ) {}

  async view(now = Date.now()): Promise<readonly NodeView[]> {
    if (now - this.readAt >= this.refreshMs) await this.refresh(now);
    return this.nodes;
  }

  async refresh(now = Date.now()): Promise<void> {
    const live = (await this.registry.members(now)).filter((m) => m.alive);
    const beatAt = new Map(live.map(({ beat }) => [beat.id, beat.at]));
    this.guesses = this.guesses.filter((g) => g.at > (beatAt.get(g.nodeId) ?? Infinity) && now - g.at <= this.registry.ttlMs);
    const guessed = new Map<string, TenantGuess[]>();
    for (const g of this.guesses) {
      const list = guessed.get(g.nodeId);
      if (list) list.push(g);
      else guessed.set(g.nodeId, [g]);
    }
    this.nodes = live.map(({ beat, order }) => withGuesses({ ...beat, state: placedState(beat, order) }, guessed.get(beat.id)));
    this.readAt = now;
    this.guessed = false;
  }

  /**
   * Places a call and records the placement, or says why it waits (no room, or its tenant at its
   * limits). The local view only ever grows between heartbeats (it cannot see calls end), so a
   * run of quick calls to one function makes a node look full that is not: when nothing fits in
   * a view that holds guesses, the heartbeats are read again before giving up, instead of the
   * caller waiting out a retry.
   */
  async decide(demand: Demand, now = Date.now()): Promise<Decision> {
    let decision = decide(await this.view(now), demand);
    if (!('placement' in decision) && this.guessed) {
      await this.refresh(now);
      decision = decide(this.nodes, demand);
    }
    if ('placement' in decision) this.placed(demand, decision.placement, now);
    return decision;
  }

  /** `decide`, for callers that need only the placement. */
  async place(demand: Demand, now = Date.now()): Promise<Placement | undefined> {
    const decision = await this.decide(demand, now);
    return 'placement' in decision ? decision.placement : undefined;
  }

  /** Records a placement locally so the next choices before a heartbeat account for it. */
  private placed(demand: Demand, placement: Placement, now: number): void {
    this.guessed = true;
    this.nodes = this.nodes.map((n) => {
      if (n.id !== placement.nodeId) return n;
      if (demand.tenant !== undefined && demand.limits !== undefined) {
        const evicted = placement.evictTenant ? evictedBy(placement.evictTenant) : 0;
        this.guesses.push({ nodeId: n.id, tenant: demand.tenant, at: now, change: tenantChange(n, demand, placement), evicted });
        if (this.guesses.length > MAX_GUESSES) this.guesses.shift();
      }
      return afterPlacement(n, demand, placement);
    });
  }
}

/** A node's view with the tenants' usage this scheduler placed there since its heartbeat. */
function withGuesses(node: NodeView, guesses: readonly TenantGuess[] | undefined): NodeView {
  if (!guesses) return node;
  const tenants = { ...node.tenants };
  const evicting: Record<string, number> = {};
  for (const g of guesses) {
    tenants[g.tenant] = addUsage(tenants[g.tenant], g.change);
    if (g.evicted > 0) evicting[g.tenant] = (evicting[g.tenant] ?? 0) + g.evicted;
  }
  return { ...node, tenants, evicting };
}
