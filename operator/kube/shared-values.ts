/**
 * One frozen instance for each distinct JSON value a projection keeps many copies of: the pods
 * of a ReplicaSet have the same labels, owner, container requests and (mostly) status, and
 * JSON.parse gives each pod its own copies of those objects and of every string in them.
 * Instances are held weakly, so a value no cached object uses any more (the labels of a
 * ReplicaSet rolled away) leaves the table when it is collected.
 */
export class SharedValues {
  private readonly instances = new Map<string, WeakRef<object>>();
  private readonly forget = new FinalizationRegistry<string>((key) => {
    // A newer instance may have taken the key since this one died.
    if (this.instances.get(key)?.deref() === undefined) this.instances.delete(key);
  });

  /** The shared instance equal to `value` (same keys in the same order), frozen. */
  share<T extends object>(value: T): T {
    const key = JSON.stringify(value);
    const known = this.instances.get(key)?.deref();
    if (known !== undefined) return known as T;
    deepFreeze(value);
    this.instances.set(key, new WeakRef(value));
    this.forget.register(value, key);
    return value;
  }

  /** Distinct values held (some may be collected and not yet forgotten). */
  get size(): number {
    return this.instances.size;
  }
}

/**
 * The string table's copy of `text`: JSON.parse gives every object its own copy of each string
 * value, while V8 keeps one internalized copy of a property name and drops it once unused, so
 * using the text as a name returns that copy (node and namespace names repeat on every pod).
 */
export function internString(text: string): string {
  for (const name in { [text]: 0 }) return name;
  return text;
}

function deepFreeze(value: object): void {
  Object.freeze(value);
  for (const child of Object.values(value) as unknown[])
    if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) deepFreeze(child);
}
