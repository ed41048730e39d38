/** How many distinct strings a table keeps before it starts over. */
const TEXTS_KEPT = 65_536;

/**
 * A 30-bit hash of a value's JSON (FNV-1a, then MurmurHash3's finalizer, which spreads the
 * near-alike JSON of pods' labels over all the bits): a small integer, which V8 keeps in the
 * table's slot without allocating. Two values may share a hash; `share` tells them apart.
 */
export function valueHash(json: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < json.length; i++) hash = Math.imul(hash ^ json.charCodeAt(i), 0x01000193);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 2;
}

/**
 * One frozen instance for each distinct JSON value a projection keeps many copies of: the pods
 * of a ReplicaSet have the same labels, owner, container requests and (mostly) status, and
 * JSON.parse gives each pod its own copies of those objects and of every string in them.
 * Instances are held weakly, so a value no cached object uses any more (the labels of a
 * ReplicaSet rolled away) leaves the table when it is collected. They are found by the hash of
 * their JSON, not by the JSON itself: at 50,000 pods those keys were 4 MiB of the heap.
 */
export class SharedValues {
  private readonly instances = new Map<number, WeakRef<object>>();
  private readonly texts = new Map<string, string>();
  private readonly forget = new FinalizationRegistry<number>((hash) => {
    // A newer instance may have taken the hash since this one died.
    if (this.instances.get(hash)?.deref() === undefined) this.instances.delete(hash);
  });

  /**
   * The shared instance equal to `value` (the same JSON: same keys in the same order), frozen.
   * A value whose hash another value holds is kept as its own instance (frozen too): rare, and
   * it only costs what sharing would save.
   */
  share<T extends object>(value: T): T {
    const json = JSON.stringify(value);
    const hash = valueHash(json);
    const known = this.instances.get(hash)?.deref();
    if (known !== undefined && JSON.stringify(known) === json) return known as T;
    deepFreeze(value);
    if (known === undefined) {
      this.instances.set(hash, new WeakRef(value));
      this.forget.register(value, hash);
    }
    return value;
  }

  /**
   * One copy of a string many objects repeat (a node's, a zone's, a namespace's name): JSON.parse
   * gives every object its own. Strings cannot be held weakly, so the table starts over once it
   * holds TEXTS_KEPT of them (nodes come and go); what it handed out stays shared.
   */
  text(value: string): string {
    const known = this.texts.get(value);
    if (known !== undefined) return known;
    if (this.texts.size >= TEXTS_KEPT) this.texts.clear();
    this.texts.set(value, value);
    return value;
  }

  /** Distinct values held (some may be collected and not yet forgotten). */
  get size(): number {
    return this.instances.size;
  }
}

function deepFreeze(value: object): void {
  Object.freeze(value);
  for (const child of Object.values(value) as unknown[])
    if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) deepFreeze(child);
}
