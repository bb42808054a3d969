/**
 * Multi-row statements in pieces PostgreSQL accepts: the protocol counts a statement's parameters
 * in 16 bits, so one INSERT may carry at most 65535 of them; a byte bound keeps each statement
 * (and the memory it is built in) moderate when rows are large.
 */

/** Most parameters one PostgreSQL statement may have. */
export const MAX_PARAMETERS = 65535;

/** Rows of `columns` parameters each that fit in one statement. */
export function rowsPerStatement(columns: number): number {
  return Math.floor(MAX_PARAMETERS / columns);
}

/**
 * `items` in order, in runs of at most `maxItems`, each also at most `maxBytes` by `sizeOf`
 * unless a single item is larger (it then goes alone).
 */
export function chunked<T>(items: readonly T[], maxItems: number, maxBytes = Number.POSITIVE_INFINITY, sizeOf: (item: T) => number = () => 0): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (run.length > 0 && (run.length >= maxItems || bytes + size > maxBytes)) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(item);
    bytes += size;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
