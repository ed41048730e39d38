/**
 * Label selectors read from untyped objects. `matchesSelector` trusts its selector's types (a
 * `matchExpressions` that is not a list would throw), so every selector from the input is read
 * here first: a well-formed one comes back typed, anything else as undefined.
 */
import type { LabelSelector, LabelSelectorRequirement } from '../api/v1alpha1.ts';
import { arr, isRecord } from './read.ts';

const OPERATORS: ReadonlySet<string> = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function requirementOf(v: unknown): LabelSelectorRequirement | undefined {
  if (!isRecord(v) || typeof v.key !== 'string' || typeof v.operator !== 'string') return undefined;
  if (!OPERATORS.has(v.operator)) return undefined;
  const req: LabelSelectorRequirement = {
    key: v.key,
    operator: v.operator as LabelSelectorRequirement['operator'],
  };
  if (v.values === undefined || v.values === null) return req;
  if (!isStrings(v.values)) return undefined;
  req.values = v.values;
  return req;
}

/** A label selector with the types Kubernetes gives it, or undefined when `v` is not one. */
export function labelSelectorOf(v: unknown): LabelSelector | undefined {
  if (!isRecord(v)) return undefined;
  const selector: LabelSelector = {};
  const { matchLabels, matchExpressions } = v;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isRecord(matchLabels) || !Object.values(matchLabels).every((x) => typeof x === 'string'))
      return undefined;
    selector.matchLabels = matchLabels as Record<string, string>;
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) return undefined;
    const reqs = arr(matchExpressions).map(requirementOf);
    if (reqs.some((r) => r === undefined)) return undefined;
    selector.matchExpressions = reqs.filter((r) => r !== undefined);
  }
  return selector;
}

interface Entry<T> {
  at: number;
  item: T;
}

/** Where an entry kept under an id is filed, to take it out again. */
interface Filed<T> {
  map: Map<string, Entry<T>[]>;
  key: string;
  entry: Entry<T>;
}

/**
 * Objects with a label selector (Services, PodDisruptionBudgets), found by the labels of the
 * pods they may select. Each is filed under the first of its matchLabels (a selector without
 * matchLabels is a candidate for every pod of its namespace), so a workload meets only the
 * objects that share a label with it, not every one in its namespace — in a namespace of a
 * thousand Services, that is the difference between linear and quadratic. Entries kept under
 * an id (`set`, `delete`) are replaced one at a time, so a change to one object costs its own
 * entry, not a new index.
 */
export class SelectorIndex<T> {
  private readonly byLabel = new Map<string, Entry<T>[]>();
  private readonly everywhere = new Map<string, Entry<T>[]>();
  private readonly byId = new Map<string, Filed<T>>();
  private added = 0;

  /** Adds an entry after every other. */
  add(namespace: string, matchLabels: Readonly<Record<string, string>> | undefined, item: T): void {
    this.file(namespace, matchLabels, { at: this.added++, item });
  }

  /**
   * Adds or replaces the entry kept under `id`, at position `at` among the others (the order
   * `candidates` gives them in).
   */
  set(
    id: string,
    at: number,
    namespace: string,
    matchLabels: Readonly<Record<string, string>> | undefined,
    item: T,
  ): void {
    this.delete(id);
    const entry = { at, item };
    this.byId.set(id, { ...this.file(namespace, matchLabels, entry), entry });
  }

  /** Takes out the entry kept under `id`, if there is one. */
  delete(id: string): void {
    const filed = this.byId.get(id);
    if (filed === undefined) return;
    this.byId.delete(id);
    const list = filed.map.get(filed.key) ?? [];
    list.splice(list.indexOf(filed.entry), 1);
    if (list.length === 0) filed.map.delete(filed.key);
  }

  /** The item kept under `id`. */
  get(id: string): T | undefined {
    return this.byId.get(id)?.entry.item;
  }

  private file(
    namespace: string,
    matchLabels: Readonly<Record<string, string>> | undefined,
    entry: Entry<T>,
  ): { map: Map<string, Entry<T>[]>; key: string } {
    const first = Object.entries(matchLabels ?? {})[0];
    const [map, key] =
      first === undefined
        ? [this.everywhere, namespace]
        : [this.byLabel, labelKey(namespace, first[0], first[1])];
    const list = map.get(key);
    if (list === undefined) map.set(key, [entry]);
    else list.push(entry);
    return { map, key };
  }

  /**
   * The objects of `namespace` that may select pods labelled `labels`, in the order they were
   * added; each still has to be matched in full.
   */
  candidates(namespace: string, labels: Readonly<Record<string, string>>): T[] {
    const found = [...(this.everywhere.get(namespace) ?? [])];
    for (const [k, v] of Object.entries(labels))
      found.push(...(this.byLabel.get(labelKey(namespace, k, v)) ?? []));
    return found.sort((a, b) => a.at - b.at).map((e) => e.item);
  }
}

/** NUL cannot occur in a namespace, a label key or a label value. */
function labelKey(namespace: string, key: string, value: string): string {
  return `${namespace}\u0000${key}\u0000${value}`;
}
