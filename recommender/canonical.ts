import { isPlainObject } from './objects/read.ts';

/** JSON with object keys sorted at every level, so equal content compares equal whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const keys = Object.keys(v);
    // Not moved: serialized as it is. Others (a boxed primitive, say) are copied, as before.
    if (!sortKeys(keys) && isPlainObject(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of keys) {
      const value = (v as Record<string, unknown>)[key];
      // An own key named __proto__ (JSON.parse makes one) is kept, as when not copied.
      if (key === '__proto__')
        Object.defineProperty(sorted, key, { value, enumerable: true, writable: true });
      else sorted[key] = value;
    }
    return sorted;
  });
}

/** Objects with more keys than this are sorted by Array.prototype.sort (n log n). */
const INSERTION_SORT_MAX = 32;

/**
 * Sorts keys in place, as Array.prototype.sort does (by UTF-16 code units), and returns whether
 * any key moved (always true past INSERTION_SORT_MAX). An insertion sort allocates nothing; V8's
 * sort allocates work arrays at each call, and digesting a full rebuild's facts allocated three
 * times as much with it.
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
