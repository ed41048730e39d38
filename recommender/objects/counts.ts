/** Counts kept up to date one change at a time. */

/** Adds `by` to the count at `at`, and forgets a count that drops to zero. */
export function addCount<K>(counts: Map<K, number>, at: K, by: number): void {
  const n = (counts.get(at) ?? 0) + by;
  if (n === 0) counts.delete(at);
  else counts.set(at, n);
}
