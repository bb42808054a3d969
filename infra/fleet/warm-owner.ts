/** Warm ownership, for worker/instances/warm-keeper.ts: pure, over the ids of the active nodes (FleetRegistry.live). */

/**
 * The node that keeps a function's `minWarm` instances: rendezvous hashing over the active
 * nodes, so every node agrees without talking, and a node joining or leaving moves only the
 * functions it wins or held.
 */
export function warmOwner(functionName: string, nodeIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const id of nodeIds) {
    const score = fnv1a(`${id}\u0000${functionName}`);
    if (score > bestScore || (score === bestScore && best !== undefined && id < best)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

/** 32-bit FNV-1a: a fast, well-spread hash for short strings. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
