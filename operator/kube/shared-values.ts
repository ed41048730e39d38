/** How many distinct strings a table keeps before it starts over. */
const TEXTS_KEPT = 65_536;

/**
 * One frozen instance for each distinct JSON value a projection keeps many copies of: the pods
 * of a ReplicaSet have the same labels, owner, container requests and (mostly) status, and
 * JSON.parse gives each pod its own copies of those objects and of every string in them.
 * Instances are held weakly, so a value no cached object uses any more (the labels of a
 * ReplicaSet rolled away) leaves the table when it is collected.
 */
export class SharedValues {
  private readonly instances = new Map<string, WeakRef<object>>();
  private readonly texts = new Map<string, string>();
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
