/** JSON with object keys sorted at every level, so equal content compares equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const keys = Object.keys(v);
    if (!sortKeys(keys)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of keys) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}

/** Objects with more keys than this are sorted by Array.prototype.sort (n log n). */
const INSERTION_SORT_MAX = 32;

/**
 * Sorts keys in place, as Array.prototype.sort does (by UTF-16 code units); whether any moved
 * (always true past INSERTION_SORT_MAX). An insertion sort allocates nothing; V8's sort allocates
 * work arrays at each call, and digesting a full rebuild's facts allocated three times as much.
 */
function sortKeys(keys: string[]): boolean {
  if (keys.length > INSERTION_SORT_MAX) {
    keys.sort();
    return true;
  }
  let moved = false;
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] ?? '';
    let j = i - 1;
    for (; j >= 0 && (keys[j] ?? '') > key; j--) keys[j + 1] = keys[j] ?? '';
    if (j + 1 !== i) {
      keys[j + 1] = key;
      moved = true;
    }
  }
  return moved;
}
