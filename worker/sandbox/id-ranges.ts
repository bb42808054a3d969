/**
 * Hands out disjoint host uid/gid ranges, one per sandbox: root in one container is a different
 * unprivileged host user from root in every other, and no two share a kernel key quota.
 */
import { CONTAINER_ID_RANGE } from './oci-spec.js';

export class IdRanges {
  private readonly free: number[] = [];
  private next = 0;

  constructor(private readonly base: number) {}

  /** First host id of a free range. */
  take(): number {
    const slot = this.free.pop() ?? this.next++;
    return this.base + slot * CONTAINER_ID_RANGE;
  }

  give(hostIdBase: number): void {
    this.free.push((hostIdBase - this.base) / CONTAINER_ID_RANGE);
  }
}
