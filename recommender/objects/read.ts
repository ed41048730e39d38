/**
 * Typed readers for untyped Kubernetes objects (a kubectl dump, a cache's projections): each
 * reader returns the value when it has the expected type and an empty or undefined value
 * otherwise, so that a malformed field is skipped instead of throwing. Every file under
 * objects/ reads objects through these and nothing else.
 */
import { clip } from '../reasons.ts';

/** A JSON object: what a Kubernetes object, or any field of one that is an object, looks like. */
export type Obj = Record<string, unknown>;

/** True for a plain JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
export function obj(v: unknown): Obj {
  return isRecord(v) ? v : {};
}
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
/**
 * The objects in a list. Read-only: a list of only objects (what the API server sends) is
 * returned as it is, not copied (pods' containers are read at every build of their workload).
 */
export function objs(v: unknown): readonly Obj[] {
  const list = arr(v);
  return list.every(isRecord) ? list : list.filter(isRecord);
}
export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
export function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
/**
 * The string values of an object. A plain object with nothing else (labels, annotations,
 * selectors as the API sends them) is returned as it is, not copied: readers never modify what
 * they read, and a copy per cached object's labels and annotations is memory kept for nothing.
 */
export function strMap(v: unknown): Record<string, string> {
  if (isPlainObject(v) && onlyStrings(v)) return v as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
/**
 * Whether every own enumerable value is a string. A loop, not Object.entries: a pod's metadata
 * is read again at each use, and the entries arrays were a seventh of a full rebuild's allocations.
 */
function onlyStrings(v: Obj): boolean {
  for (const k in v) if (Object.hasOwn(v, k) && typeof v[k] !== 'string') return false;
  return true;
}
/** A record whose prototype is Object's or none: not a class instance, Map or boxed primitive. */
export function isPlainObject(v: unknown): v is Obj {
  if (!isRecord(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
export function strings(v: unknown): string[] {
  return arr(v).filter((x): x is string => typeof x === 'string');
}

/** A value as JSON, cut short, for a warning that says what was found. */
export function shown(v: unknown): string {
  return clip(JSON.stringify(v), 80);
}

export interface OwnerRef {
  kind: string;
  name: string;
  controller: boolean;
  apiVersion?: string;
}

export interface Meta {
  name: string;
  namespace: string;
  /** Always set, even when absent: a property added later costs every object a second block. */
  uid: string | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** As the object has them when they are well-formed (not copied), or a copy of those that are. */
  owners: readonly OwnerRef[];
}

/** An object with the kind and metadata it was indexed under, and its raw form. */
export interface K8s {
  kind: string;
  meta: Meta;
  raw: Obj;
}

/**
 * What an object without labels, annotations or owners reads: one frozen value for all of them,
 * not an empty one each (kopek keeps the metadata of every cached object).
 */
const NO_STRINGS: Record<string, string> = Object.freeze({});
const NO_OWNERS: readonly OwnerRef[] = Object.freeze([]);

/** The metadata kopek reads; undefined without a name. */
export function metaOf(raw: Obj): Meta | undefined {
  const m = obj(raw.metadata);
  const name = str(m.name);
  if (name === undefined || name === '') return undefined;
  return {
    name,
    namespace: str(m.namespace) ?? '',
    labels: m.labels === undefined ? NO_STRINGS : strMap(m.labels),
    annotations: m.annotations === undefined ? NO_STRINGS : strMap(m.annotations),
    owners: ownerRefs(m.ownerReferences),
    uid: str(m.uid),
  };
}

/**
 * Owner references as OwnerRefs. References the API server sent (kind, name, a boolean
 * controller, an apiVersion) are returned as they are, like labels by strMap; otherwise a copy
 * of the usable ones.
 */
function ownerRefs(v: unknown): readonly OwnerRef[] {
  if (v === undefined) return NO_OWNERS;
  if (Array.isArray(v) && v.every(isOwnerRef)) return v;
  return objs(v).flatMap((o) => {
    const kind = str(o.kind);
    const oname = str(o.name);
    if (kind === undefined || oname === undefined) return [];
    const apiVersion = str(o.apiVersion);
    const ref: OwnerRef = { kind, name: oname, controller: o.controller === true };
    if (apiVersion !== undefined) ref.apiVersion = apiVersion;
    return [ref];
  });
}

function isOwnerRef(o: unknown): o is OwnerRef {
  return (
    isRecord(o) &&
    typeof o.kind === 'string' &&
    typeof o.name === 'string' &&
    typeof o.controller === 'boolean' &&
    (o.apiVersion === undefined || typeof o.apiVersion === 'string')
  );
}

/** "Kind namespace/name" (or "Kind name" when cluster-scoped), for warnings. */
export function describe(o: K8s): string {
  return o.meta.namespace === ''
    ? `${o.kind} ${o.meta.name}`
    : `${o.kind} ${o.meta.namespace}/${o.meta.name}`;
}

/** The controlling owner (or the only one). */
export function ownerOf(meta: Meta): OwnerRef | undefined {
  return (
    meta.owners.find((o) => o.controller) ?? (meta.owners.length === 1 ? meta.owners[0] : undefined)
  );
}

/**
 * How many distinct key prefixes `sharedPrefix` keeps before it starts over: every kind's and
 * the cache's for each namespace, a dozen per namespace, so thousands of namespaces fit.
 */
const PREFIXES_KEPT = 65_536;
const prefixes = new Map<string, string>();

/**
 * One shared copy of a key's prefix (`kind/namespace/`). A key made of a shared prefix and a
 * name is a rope of the two (32 bytes); made as one template, each key has its own copy of the
 * prefix as well: at 50,000 pods and the keys of every map they are in, megabytes of copies of a
 * few thousand strings. The table starts over when it is full (namespaces come and go).
 */
export function sharedPrefix(prefix: string): string {
  const known = prefixes.get(prefix);
  if (known !== undefined) return known;
  if (prefixes.size >= PREFIXES_KEPT) prefixes.clear();
  prefixes.set(prefix, prefix);
  return prefix;
}

/** The index key of an object: `kind/namespace/name`. */
export function objectKey(kind: string, namespace: string, name: string): string {
  return sharedPrefix(`${kind}/${namespace}/`) + name;
}
