import { randomUUID } from 'node:crypto';
import type { JsonPatchOperation } from '../../recommender/apply/operations.ts';
import { applyJsonPatch, JsonPatchError } from '../../recommender/apply/testing.ts';
import { isRecord } from '../../recommender/objects/read.ts';
import {
  apiVersionOf,
  applyVerb,
  KubeApiError,
  type ApplyOptions,
  type KubeApi,
  type ListOptions,
  type PatchOptions,
  type KubeObject,
  type ObjectList,
  type ResourceType,
  type WatchEvent,
} from '../kube/client.ts';
import type { Clock } from '../clock.ts';

/**
 * An in-memory Kubernetes API for unit tests of the operator core. It keeps objects with
 * resourceVersions and generations, serves paged LIST, WATCH from a resourceVersion (410 once
 * the history is compacted), server-side apply with per-field-manager ownership of top-level
 * spec/status fields and of label/annotation keys, create/replace/delete with the API server's
 * 404/409 answers, and injects faults per call. There is no garbage collector: what kopek
 * deletes, kopek must delete itself.
 *
 * It is not an API server: no schemas, no admission, no defaulting. Tests of those talk to the
 * real kube-apiserver (test/integration). Watch events arrive at once, unless `watchLatency`
 * delays them as a busy API server does: then a write's answer comes before its event, and a
 * cache can be behind what was just written.
 */

type Obj = Record<string, unknown>;

export type Verb =
  | 'list'
  | 'get'
  | 'watch'
  | 'apply'
  | 'apply-status'
  | 'patch'
  | 'create'
  | 'update'
  | 'delete'
  | 'version'
  | 'discovery';

export interface Call {
  verb: Verb;
  /** The resource's plural, e.g. "workloadrecommendations". */
  resource: string;
  name?: string;
  namespace?: string;
}

/** A fault to inject: an API error answer, or a request that times out. */
export type Fault = KubeApiError | 'timeout';

interface Stored {
  object: Obj;
  /** Field manager → the fields it owns ("spec.x", "status.y", "labels.k", "annotations.k"). */
  owners: Map<string, Set<string>>;
}

interface Watcher {
  type: ResourceType;
  onEvent: (event: WatchEvent) => void;
  end: (error?: Error) => void;
}

interface FaultRule {
  match: Partial<Call> & { verb: Verb };
  fault: Fault;
  remaining: number;
}

/** Builds an API error as the server would answer it. */
export function apiError(status: number, reason: string, message = reason): KubeApiError {
  return new KubeApiError(status, reason, message);
}

export class FakeKube implements KubeApi {
  /** Every request made, in order. */
  readonly calls: Call[] = [];
  private readonly stores = new Map<string, Map<string, Stored>>();
  private readonly history = new Map<string, { version: number; event: WatchEvent }[]>();
  private readonly compactedAt = new Map<string, number>();
  private readonly watchers = new Set<Watcher>();
  private readonly faults: FaultRule[] = [];
  private readonly unserved = new Set<string>();
  private readonly reviewers = new Map<string, (spec: Obj) => Obj>();
  private version = 100;
  private minor: string;
  private readonly watchLatency: { clock: Clock; ms: number } | undefined;

  constructor(
    options: {
      minor?: string;
      unserved?: readonly ResourceType[];
      /** Deliver every watch event this long after the change, on this clock (in order). */
      watchLatency?: { clock: Clock; ms: number };
    } = {},
  ) {
    this.minor = options.minor ?? '35';
    this.watchLatency = options.watchLatency;
    for (const type of options.unserved ?? []) this.unserved.add(typeKey(type));
  }

  // ---- what tests do to the fake ----------------------------------------------------------

  /** The next `times` calls matching `match` fail with `fault`. */
  failNext(match: Partial<Call> & { verb: Verb }, fault: Fault, times = 1): void {
    this.faults.push({ match, fault, remaining: times });
  }

  /**
   * Answers creates of a review resource (tokenreviews, subjectaccessreviews) with the status
   * `review` returns for the request's spec; like the API server, it stores nothing.
   */
  answerReviews(type: ResourceType, review: (spec: Obj) => Obj): void {
    this.reviewers.set(typeKey(type), review);
  }

  /** Starts (or stops) serving a resource type, e.g. Argo Rollouts being installed. */
  setServed(type: ResourceType, served: boolean): void {
    if (served) this.unserved.delete(typeKey(type));
    else this.unserved.add(typeKey(type));
  }

  /** Creates or replaces an object as a person with kubectl would (no field manager). */
  put(type: ResourceType, object: KubeObject | Obj): Obj {
    const incoming = clone(object as Obj);
    const { name, namespace } = nameOf(incoming);
    const existing = this.store(type).get(objectKey(name, namespace, type));
    if (!existing) return this.insert(type, incoming, new Map());
    const metadata = { ...meta(existing.object), ...meta(incoming) };
    return this.update(type, existing, { ...incoming, metadata });
  }

  /**
   * Deletes an object as a person would; no error when it is gone. `lost: true` deletes it
   * without a watch event, as when a watch missed one: only a relist can notice.
   */
  remove(
    type: ResourceType,
    name: string,
    namespace?: string,
    options: { lost?: boolean } = {},
  ): void {
    const store = this.store(type);
    const key = objectKey(name, namespace, type);
    const existing = store.get(key);
    if (!existing) return;
    store.delete(key);
    const object = clone(existing.object);
    meta(object).resourceVersion = String(++this.version);
    if (!options.lost) this.record(type, 'DELETED', object);
  }

  /** The stored object, or undefined. */
  object(type: ResourceType, name: string, namespace?: string): Obj | undefined {
    const stored = this.store(type).get(objectKey(name, namespace, type));
    return stored ? clone(stored.object) : undefined;
  }

  objects(type: ResourceType): Obj[] {
    return [...this.store(type).values()].map((stored) => clone(stored.object));
  }

  /** Forgets the watch history: watches from an older resourceVersion now get 410 Gone. */
  compact(): void {
    for (const key of this.history.keys()) {
      this.history.set(key, []);
      this.compactedAt.set(key, this.version);
    }
  }

  /** Ends every open watch as the server does when its timeoutSeconds pass. */
  closeWatches(error?: Error): void {
    for (const watcher of [...this.watchers]) watcher.end(error);
  }

  /** Open watches, by resource plural. */
  openWatches(resource?: string): number {
    return [...this.watchers].filter((w) => resource === undefined || w.type.plural === resource)
      .length;
  }

  /** Calls of one verb (and resource), e.g. the writes a reconcile made. */
  count(verb: Verb, resource?: string): number {
    return this.calls.filter(
      (call) => call.verb === verb && (resource === undefined || call.resource === resource),
    ).length;
  }

  // ---- the API --------------------------------------------------------------------------------

  listPage<T>(type: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    return this.serve({ verb: 'list', resource: type.plural, ...ns(options.namespace) }, () => {
      const all = [...this.store(type).entries()]
        .filter(
          ([, stored]) =>
            options.namespace === undefined || meta(stored.object).namespace === options.namespace,
        )
        .sort(([a], [b]) => a.localeCompare(b));
      const start = Number(options.continueToken ?? '0');
      const limit = options.limit ?? 500;
      const page = all.slice(start, start + limit).map(([, stored]) => clone(stored.object));
      const next = start + limit < all.length ? String(start + limit) : '';
      return {
        metadata: { resourceVersion: String(this.version), continue: next },
        items: page as T[],
      };
    });
  }

  get<T>(type: ResourceType, name: string, namespace?: string): Promise<T> {
    return this.serve({ verb: 'get', resource: type.plural, name, ...ns(namespace) }, () => {
      const stored = this.store(type).get(objectKey(name, namespace, type));
      if (!stored) throw notFound(type, name);
      return clone(stored.object) as T;
    });
  }

  async watch(
    type: ResourceType,
    options: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (event: WatchEvent) => void,
  ): Promise<void> {
    await this.serve({ verb: 'watch', resource: type.plural }, () => undefined);
    const from = Number(options.resourceVersion);
    if (from < (this.compactedAt.get(typeKey(type)) ?? 0))
      throw apiError(410, 'Expired', `too old resource version: ${from}`);
    return new Promise<void>((resolve, reject) => {
      const watcher: Watcher = {
        type,
        onEvent,
        end: (error) => {
          this.watchers.delete(watcher);
          options.signal.removeEventListener('abort', abort);
          if (error) reject(error);
          else resolve();
        },
      };
      const abort = (): void => {
        watcher.end(
          options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted'),
        );
      };
      if (options.signal.aborted) {
        abort();
        return;
      }
      options.signal.addEventListener('abort', abort, { once: true });
      this.watchers.add(watcher);
      try {
        for (const entry of this.history.get(typeKey(type)) ?? [])
          if (entry.version > from) onEvent(clone(entry.event));
      } catch (error) {
        watcher.end(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  apply<T>(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<T> {
    const { name, namespace } = object.metadata;
    return this.serve(
      { verb: applyVerb(options), resource: type.plural, name, ...ns(namespace) },
      () => {
        const key = objectKey(name, namespace, type);
        const existing = this.store(type).get(key);
        const applied = clone(object as unknown as Obj);
        if (options.subresource === 'status') {
          if (!existing) throw notFound(type, name);
          return this.applyFields(type, existing, applied, options.fieldManager, ['status']) as T;
        }
        if (!existing) {
          const { status: _ignored, ...withoutStatus } = applied;
          const owners = new Map([[options.fieldManager, fieldsOf(withoutStatus, ['spec'])]]);
          return this.insert(type, withoutStatus, owners) as T;
        }
        return this.applyFields(type, existing, applied, options.fieldManager, ['spec']) as T;
      },
    );
  }

  async applyUnread(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<void> {
    await this.apply(type, object, options);
  }

  /** A JSON patch, all or nothing: a failed test or a missing path is 422 Invalid, as served. */
  patch<T>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    operations: readonly unknown[],
    options: PatchOptions,
  ): Promise<T> {
    return this.serve({ verb: 'patch', resource: type.plural, name, ...ns(namespace) }, () => {
      const existing = this.store(type).get(objectKey(name, namespace, type));
      if (!existing) throw notFound(type, name);
      let next: Obj;
      try {
        next = applyJsonPatch(existing.object, operations as JsonPatchOperation[]);
      } catch (error) {
        if (error instanceof JsonPatchError)
          throw apiError(422, 'Invalid', `the server rejected our request: ${error.message}`);
        throw error;
      }
      if (options.dryRun) return clone(next) as T;
      return this.update(type, existing, next) as T;
    });
  }

  create<T>(type: ResourceType, object: KubeObject): Promise<T> {
    const { name, namespace } = object.metadata;
    return this.serve({ verb: 'create', resource: type.plural, name, ...ns(namespace) }, () => {
      const review = this.reviewers.get(typeKey(type));
      if (review) {
        const request = clone(object as unknown as Obj);
        return { ...request, status: review((request.spec ?? {}) as Obj) } as T;
      }
      if (this.store(type).has(objectKey(name, namespace, type)))
        throw apiError(409, 'AlreadyExists', `${type.plural} "${name}" already exists`);
      return this.insert(type, clone(object as unknown as Obj), new Map()) as T;
    });
  }

  replace<T>(type: ResourceType, object: KubeObject): Promise<T> {
    const { name, namespace, resourceVersion } = object.metadata;
    return this.serve({ verb: 'update', resource: type.plural, name, ...ns(namespace) }, () => {
      const existing = this.store(type).get(objectKey(name, namespace, type));
      if (!existing) throw notFound(type, name);
      if (
        resourceVersion !== undefined &&
        resourceVersion !== meta(existing.object).resourceVersion
      )
        throw apiError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified`,
        );
      return this.update(type, existing, clone(object as unknown as Obj)) as T;
    });
  }

  delete(type: ResourceType, name: string, namespace?: string): Promise<void> {
    return this.serve({ verb: 'delete', resource: type.plural, name, ...ns(namespace) }, () => {
      this.remove(type, name, namespace);
    });
  }

  serverVersion(): Promise<{ major?: string; minor?: string; gitVersion?: string }> {
    return this.serve({ verb: 'version', resource: 'version' }, () => ({
      major: '1',
      minor: this.minor,
      gitVersion: `v1.${this.minor}.0`,
    }));
  }

  serves(type: ResourceType): Promise<boolean> {
    return this.serve(
      { verb: 'discovery', resource: type.plural },
      () => !this.unserved.has(typeKey(type)),
    );
  }

  // ---- inside ---------------------------------------------------------------------------------

  /** Records the call, injects a matching fault, else answers (asynchronously, like a server). */
  private async serve<T>(call: Call, answer: () => T): Promise<T> {
    this.calls.push(call);
    await Promise.resolve();
    const rule = this.faults.find((candidate) => matches(candidate.match, call));
    if (rule) {
      rule.remaining--;
      if (rule.remaining <= 0) this.faults.splice(this.faults.indexOf(rule), 1);
      if (rule.fault === 'timeout')
        throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
      throw rule.fault;
    }
    return answer();
  }

  private store(type: ResourceType): Map<string, Stored> {
    const key = typeKey(type);
    let store = this.stores.get(key);
    if (!store) this.stores.set(key, (store = new Map<string, Stored>()));
    return store;
  }

  private insert(type: ResourceType, object: Obj, owners: Map<string, Set<string>>): Obj {
    const { name, namespace } = nameOf(object);
    const metadata = meta(object);
    metadata.uid ??= randomUUID();
    metadata.resourceVersion = String(++this.version);
    metadata.generation = 1;
    metadata.creationTimestamp ??= new Date(0).toISOString();
    object.apiVersion ??= apiVersionOf(type);
    object.kind ??= type.kind;
    this.store(type).set(objectKey(name, namespace, type), { object, owners });
    this.record(type, 'ADDED', object);
    return clone(object);
  }

  private update(type: ResourceType, existing: Stored, next: Obj): Obj {
    const before = existing.object;
    const metadata = meta(next);
    for (const key of ['uid', 'creationTimestamp'] as const)
      if (meta(before)[key] !== undefined) metadata[key] = meta(before)[key];
    metadata.generation = meta(before).generation;
    metadata.resourceVersion = meta(before).resourceVersion;
    if (JSON.stringify(next) === JSON.stringify(before)) return clone(before);
    if (JSON.stringify(next.spec) !== JSON.stringify(before.spec))
      metadata.generation = Number(meta(before).generation ?? 1) + 1;
    metadata.resourceVersion = String(++this.version);
    existing.object = next;
    this.record(type, 'MODIFIED', next);
    return clone(next);
  }

  /**
   * Server-side apply over `sections` (spec or status) and metadata labels/annotations: the
   * manager's fields are set; fields it owned before and no longer sends are removed; fields of
   * other managers are kept (force: the applier takes over any it sends).
   */
  private applyFields(
    type: ResourceType,
    existing: Stored,
    applied: Obj,
    manager: string,
    sections: readonly string[],
  ): Obj {
    const statusScope = sections.includes('status');
    const inScope = (field: string): boolean => field.startsWith('status.') === statusScope;
    const next = clone(existing.object);
    const sent = fieldsOf(applied, sections);
    const owned = existing.owners.get(manager) ?? new Set<string>();
    for (const field of owned) if (inScope(field) && !sent.has(field)) deleteField(next, field);
    for (const field of sent) setField(next, field, getField(applied, field));
    for (const [other, fields] of existing.owners)
      if (other !== manager) for (const field of sent) fields.delete(field);
    existing.owners.set(manager, new Set([...[...owned].filter((f) => !inScope(f)), ...sent]));
    if (!statusScope) {
      const refs = meta(applied).ownerReferences;
      if (refs !== undefined) meta(next).ownerReferences = refs;
    }
    return this.update(type, existing, next);
  }

  private record(type: ResourceType, eventType: WatchEvent['type'], object: Obj): void {
    const key = typeKey(type);
    const event: WatchEvent = { type: eventType, object: clone(object) };
    const history = this.history.get(key) ?? [];
    history.push({ version: this.version, event });
    this.history.set(key, history);
    // Only to the watches open now: one opened later replays this event from the history.
    const open = [...this.watchers];
    const deliver = (): void => {
      for (const watcher of open) {
        if (typeKey(watcher.type) !== key || !this.watchers.has(watcher)) continue;
        try {
          watcher.onEvent(clone(event));
        } catch (error) {
          watcher.end(error instanceof Error ? error : new Error(String(error)));
        }
      }
    };
    if (this.watchLatency) this.watchLatency.clock.setTimeout(deliver, this.watchLatency.ms);
    else deliver();
  }
}

function typeKey(type: ResourceType): string {
  return `${type.group}/${type.plural}`;
}

function objectKey(name: string, namespace: string | undefined, type: ResourceType): string {
  return type.namespaced ? `${namespace ?? ''}/${name}` : name;
}

function ns(namespace: string | undefined): { namespace?: string } {
  return namespace === undefined ? {} : { namespace };
}

function meta(object: Obj): Record<string, unknown> {
  if (typeof object.metadata !== 'object' || object.metadata === null) object.metadata = {};
  return object.metadata as Record<string, unknown>;
}

function nameOf(object: Obj): { name: string; namespace?: string } {
  const metadata = meta(object);
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  return typeof metadata.namespace === 'string'
    ? { name, namespace: metadata.namespace }
    : { name };
}

function notFound(type: ResourceType, name: string): KubeApiError {
  return apiError(404, 'NotFound', `${type.plural} "${name}" not found`);
}

function matches(match: Partial<Call>, call: Call): boolean {
  return (Object.keys(match) as (keyof Call)[]).every((key) => match[key] === call[key]);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Fields an applied object sets: top-level keys of each section, label and annotation keys. */
function fieldsOf(object: Obj, sections: readonly string[]): Set<string> {
  const fields = new Set<string>();
  for (const section of sections) {
    const value = object[section];
    if (isRecord(value)) for (const key of Object.keys(value)) fields.add(`${section}.${key}`);
  }
  if (sections.includes('spec')) {
    for (const map of ['labels', 'annotations'] as const) {
      const values = meta(object)[map];
      if (isRecord(values)) for (const key of Object.keys(values)) fields.add(`${map}.${key}`);
    }
  }
  return fields;
}

function container(object: Obj, field: string): [Obj | undefined, string] {
  const dot = field.indexOf('.');
  const section = field.slice(0, dot);
  const key = field.slice(dot + 1);
  const parent = section === 'labels' || section === 'annotations' ? meta(object) : object;
  const value = parent[section];
  return [isRecord(value) ? value : undefined, key];
}

function getField(object: Obj, field: string): unknown {
  const [holder, key] = container(object, field);
  return holder?.[key];
}

function setField(object: Obj, field: string, value: unknown): void {
  const dot = field.indexOf('.');
  const section = field.slice(0, dot);
  const parent = section === 'labels' || section === 'annotations' ? meta(object) : object;
  if (typeof parent[section] !== 'object' || parent[section] === null) parent[section] = {};
  (parent[section] as Obj)[field.slice(dot + 1)] = clone(value);
}

function deleteField(object: Obj, field: string): void {
  const [holder, key] = container(object, field);
  if (holder) Reflect.deleteProperty(holder, key);
}
