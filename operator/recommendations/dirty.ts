import { isDeepStrictEqual } from 'node:util';
import type { LabelSelector } from '../../recommender/api/v1alpha1.ts';
import { labelSelectorOf } from '../../recommender/objects/selectors.ts';
import { SERVICE_NAME_LABEL, serviceSelector } from '../../recommender/objects/services.ts';
import type { ClusterCache } from '../cache.ts';
import { objectKey } from '../kube/informer.ts';
import { controllerOf, type Projected } from '../kube/projections.ts';
import type { ResourceName } from '../kube/resources.ts';
import { workloadKey } from './keys.ts';

/** The resource that holds each workload kind. */
export const WORKLOAD_RESOURCES: Readonly<Record<string, ResourceName>> = {
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  ReplicaSet: 'replicasets',
  Job: 'jobs',
  CronJob: 'cronjobs',
  Rollout: 'rollouts',
};

/** The workload kind each workload resource holds. */
const WORKLOAD_KINDS: Partial<Record<ResourceName, string>> = Object.fromEntries(
  Object.entries(WORKLOAD_RESOURCES).map(([kind, resource]) => [resource, kind]),
);

/**
 * Resources a workload's facts read only from its own namespace, by name (PVCs, the Namespace's
 * labels): a change to one dirties its namespace. Services, EndpointSlices and PDBs dirty the
 * workloads they select (`Changes.selectors`), an HPA the workload it scales, a ReplicaSet or Job
 * itself and the workloads that may read it through its pods: those change all the time (a slice
 * with each pod's readiness, a ReplicaSet with each pod of a rollout, a Job with each run), and a
 * namespace can hold hundreds of workloads.
 */
const BY_NAMESPACE: ReadonlySet<ResourceName> = new Set(['persistentvolumeclaims']);

/** Resources whose objects select workloads (see BY_NAMESPACE). */
const SELECTING: ReadonlySet<ResourceName> = new Set([
  'services',
  'endpointslices',
  'poddisruptionbudgets',
  'horizontalpodautoscalers',
]);

/** What changed since the last build, in the terms the facts cache resolves to workloads. */
export interface Changes {
  /**
   * Rebuild every workload (first build, resync, a SavingsPolicy, PersistentVolume or
   * StorageClass changed).
   */
  all: boolean;
  /** Workload keys (`wl/<namespace>/<kind>/<name>`). */
  workloads: Set<string>;
  /**
   * The workloads among them whose own object was created, deleted or edited (its spec, labels
   * or annotations): a change by a person, a pipeline or an autoscaler, not the churn of a
   * rollout's status.
   */
  edited: Set<string>;
  /** Every workload of these namespaces. */
  namespaces: Set<string>;
  /** Every workload with a pod on these nodes. */
  nodes: Set<string>;
  /** Every workload of the namespace whose pod template's labels the selector matches. */
  selectors: { namespace: string; selector: LabelSelector }[];
  /**
   * Bring every workload with a Service up to date with where the cluster's client pods run now
   * (when that moved). Otherwise a move of them alone waits for a call that asks this.
   */
  clients: boolean;
  /**
   * The cached objects that changed, by `<resource>/<namespace/name>`, for the facts' indexed
   * input to read again: in the order the cache holds them once added (an object added, or
   * deleted and added again, comes last, as in the cache), and whether it was deleted meanwhile.
   */
  objects: Map<string, ChangedObject>;
}

/** A cached object that changed: where to read it now, and whether it was deleted meanwhile. */
export interface ChangedObject {
  resource: ResourceName;
  /** Its key in the cache (`namespace/name`, or `name`). */
  key: string;
  namespace: string;
  name: string;
  deleted: boolean;
}

/**
 * Collects, between two builds of the facts, what each change in the caches can affect. It
 * errs on the side of more: a workload marked needlessly is rebuilt to the same facts and not
 * reconciled; one missed keeps stale facts until the next resync — which is why a property test
 * compares the incremental facts with a full build over random changes.
 */
export class ChangeTracker {
  private changes: Changes = fresh(true);

  /** Rebuild everything next time, keeping these workloads marked as edited (they go first). */
  markAll(edited: Iterable<string> = []): void {
    this.changes.all = true;
    for (const key of edited) this.changes.edited.add(key);
  }

  /** Next time, rebuild the workloads with a Service if the cluster's client pods moved. */
  markClients(): void {
    this.changes.clients = true;
  }

  /** How many marks wait for the next build (every workload, client pods, each key). */
  get size(): number {
    const { all, clients, workloads, namespaces, nodes, selectors } = this.changes;
    return (
      Number(all) +
      Number(clients) +
      workloads.size +
      namespaces.size +
      nodes.size +
      selectors.length
    );
  }

  markWorkloads(keys: Iterable<string>): void {
    for (const key of keys) this.changes.workloads.add(key);
  }

  /**
   * Records a change to one cached object (`previous` is the version it replaced). Returns
   * false when nothing the facts read changed (only the resourceVersion, or a status kopek
   * itself wrote), so no build is needed for it.
   */
  markChanged(
    cache: ClusterCache,
    resource: ResourceName,
    object: Projected,
    previous?: Projected,
  ): boolean {
    if (resource === 'workloadrecommendations') return false;
    this.recordObject(cache, resource, object, previous);
    // A delete carries the last version too: only an update still in the cache can be a no-op.
    const deleted = cache.get(resource, objectKey(object)) === undefined;
    if (previous !== undefined && !deleted && sameForFacts(resource, previous, object))
      return false;
    const namespace = object.metadata.namespace ?? '';
    const kind = WORKLOAD_KINDS[resource];
    const { changes } = this;
    if (kind !== undefined) {
      const key = workloadKey(namespace, kind, object.metadata.name);
      changes.workloads.add(key);
      if (previous === undefined || deleted || edited(previous, object)) changes.edited.add(key);
    }
    if (SELECTING.has(resource))
      for (const version of previous === undefined ? [object] : [object, previous])
        this.markSelected(cache, resource, version);
    else if (BY_NAMESPACE.has(resource)) changes.namespaces.add(namespace);
    else if (resource === 'namespaces') changes.namespaces.add(object.metadata.name);
    else if (resource === 'nodes') changes.nodes.add(object.metadata.name);
    else if (resource === 'replicasets' || resource === 'jobs')
      for (const version of previous === undefined ? [object] : [object, previous])
        this.markWorkloads(
          intermediateReaders(
            version,
            resource === 'jobs' ? ['CronJob'] : ['Deployment', 'Rollout'],
          ),
        );
    else if (resource === 'pods') {
      this.markWorkloads(podWorkloads(cache, object));
      if (previous !== undefined) this.markWorkloads(podWorkloads(cache, previous));
    } else if (kind === undefined) changes.all = true; // SavingsPolicies, PersistentVolumes, StorageClasses
    return true;
  }

  /**
   * Marks what one version of a Service, EndpointSlice, PDB or HPA reads into: the workloads its
   * selector (a slice: its Service's) matches, or the workload the HPA scales.
   */
  private markSelected(cache: ClusterCache, resource: ResourceName, version: Projected): void {
    const namespace = version.metadata.namespace ?? '';
    const select = (selector: LabelSelector | undefined): void => {
      if (selector !== undefined) this.changes.selectors.push({ namespace, selector });
    };
    const matchLabels = (spec: unknown): LabelSelector | undefined => {
      const selector = serviceSelector(spec);
      return selector === undefined ? undefined : { matchLabels: selector };
    };
    if (resource === 'services') select(matchLabels(version.spec));
    else if (resource === 'endpointslices') {
      const service = version.metadata.labels?.[SERVICE_NAME_LABEL];
      if (service !== undefined)
        select(matchLabels(cache.get('services', `${namespace}/${service}`)?.spec));
    } else if (resource === 'poddisruptionbudgets') select(labelSelectorOf(version.spec?.selector));
    else {
      const target = version.spec?.scaleTargetRef as { kind?: unknown; name?: unknown } | undefined;
      if (typeof target?.kind === 'string' && typeof target.name === 'string')
        this.changes.workloads.add(workloadKey(namespace, target.kind, target.name));
    }
  }

  /**
   * Keeps the object's place in the cache's order: the cache appends what is added (new, or
   * deleted and added again) and replaces an update in place. Not while every workload is to be
   * rebuilt: that build indexes every cached object anew, and at a cold start this list would
   * hold an entry for each object of the cluster until it runs.
   */
  private recordObject(
    cache: ClusterCache,
    resource: ResourceName,
    object: Projected,
    previous: Projected | undefined,
  ): void {
    if (this.changes.all) return;
    const key = objectKey(object);
    const id = `${resource}/${key}`;
    const known = this.changes.objects.get(id);
    const deleted = cache.get(resource, key) === undefined;
    const added = !deleted && previous === undefined;
    if (known !== undefined && !added) {
      known.deleted ||= deleted;
      return;
    }
    this.changes.objects.delete(id);
    this.changes.objects.set(id, {
      resource,
      key,
      namespace: object.metadata.namespace ?? '',
      name: object.metadata.name,
      deleted: deleted || known?.deleted === true,
    });
  }

  /** What changed since the last call, leaving nothing. */
  take(): Changes {
    const taken = this.changes;
    this.changes = fresh(false);
    return taken;
  }
}

function fresh(all: boolean): Changes {
  return {
    all,
    workloads: new Set(),
    edited: new Set(),
    namespaces: new Set(),
    nodes: new Set(),
    selectors: [],
    clients: false,
    objects: new Map(),
  };
}

/** A workload's spec (its generation), labels or annotations moved, or its deletion began. */
function edited(previous: Projected, object: Projected): boolean {
  const a = previous.metadata;
  const b = object.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    !isDeepStrictEqual(a.labels, b.labels) ||
    !isDeepStrictEqual(a.annotations, b.annotations)
  );
}

/**
 * Two versions of an object that give the same facts: equal but for what the facts never read.
 * Compared in place, whatever the order of keys: on every update event, where canonical JSON
 * of both versions cost sorted copies of each and two strings.
 */
function sameForFacts(resource: ResourceName, a: Projected, b: Projected): boolean {
  const comparable = (o: Projected): unknown => {
    const { resourceVersion: _, ...metadata } = o.metadata;
    // A SavingsPolicy's status is kopek's own totals, written after the facts.
    const { status, ...rest } = o;
    return { ...rest, metadata, ...(resource === 'savingspolicies' ? {} : { status }) };
  };
  return isDeepStrictEqual(comparable(a), comparable(b));
}

/**
 * The workloads a pod may belong to: a superset of the builder's owner chain (pod →
 * ReplicaSet → Deployment or Rollout, pod → Job → CronJob), including the parent it would guess
 * from the owner's name when the ReplicaSet or Job is not cached.
 */
export function podWorkloads(cache: ClusterCache, pod: Projected): string[] {
  const owner = controllerOf(pod);
  if (owner === undefined) return [];
  const namespace = pod.metadata.namespace ?? '';
  const keys = [workloadKey(namespace, owner.kind, owner.name)];
  const parents =
    owner.kind === 'ReplicaSet'
      ? ['Deployment', 'Rollout']
      : owner.kind === 'Job'
        ? ['CronJob']
        : [];
  if (parents.length === 0) return keys;
  const intermediate = cache.get(
    owner.kind === 'ReplicaSet' ? 'replicasets' : 'jobs',
    `${namespace}/${owner.name}`,
  );
  const top = intermediate === undefined ? undefined : controllerOf(intermediate);
  if (top !== undefined) keys.push(workloadKey(namespace, top.kind, top.name));
  const base = nameBase(owner.name);
  if (base !== undefined) for (const kind of parents) keys.push(workloadKey(namespace, kind, base));
  return keys;
}

/**
 * The workloads whose facts may read a ReplicaSet or Job (an intermediate between pods and their
 * workload), besides itself: the one its controlling owner names (its pods are that workload's)
 * and those (`guessed` kinds) its pods would be given from its name when it is gone (see
 * podWorkloads).
 */
function intermediateReaders(o: Projected, guessed: readonly string[]): string[] {
  const namespace = o.metadata.namespace ?? '';
  const keys: string[] = [];
  const owner = controllerOf(o);
  if (owner !== undefined) keys.push(workloadKey(namespace, owner.kind, owner.name));
  const base = nameBase(o.metadata.name);
  if (base !== undefined) for (const kind of guessed) keys.push(workloadKey(namespace, kind, base));
  return keys;
}

/**
 * A ReplicaSet's or Job's name without its last "-" segment (the pod-template hash, the
 * scheduled time): the parent the builder may guess. A superset of its guesses (ownerChainKeys).
 */
function nameBase(name: string): string | undefined {
  return /^(.*)-[^-]+$/.exec(name)?.[1];
}
