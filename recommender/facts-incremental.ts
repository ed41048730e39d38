/**
 * The builder's input kept indexed between builds, one object at a time: what the operator uses
 * so that a change costs what it touches, not a new index of the whole cluster. `set` and
 * `remove` record a change; `prepare` brings what they made stale up to date — a pod's running
 * entry when the pod, its node or its owner chain changed (and the client pods per zone and pods
 * per workload with it), the cluster's facts from the nodes' counts when a Node changed, the
 * SavingsPolicies when one changed, and the one entry of a changed Service, EndpointSlice, PDB,
 * HPA or a CronJob's Jobs in its lookup — and returns the same PreparedFacts as `prepareFacts`
 * over the same objects. Pure: no I/O, no clock.
 */
import {
  indexedWorkloads,
  orphansWarning,
  policiesOf,
  preparedFrom,
  type BuildOptions,
  type Context,
  type PreparedFacts,
} from './facts-from-objects.ts';
import { imagePlatformTable } from './images.ts';
import type { HpaFacts } from './facts.ts';
import { budgetOf, hpaOf, jobOwnerKey, type Budget } from './objects/controllers.ts';
import { addCount } from './objects/counts.ts';
import {
  groupOf,
  KNOWN_KINDS,
  SYSTEM_NAMESPACES,
  WORKLOAD_KINDS,
  type Index,
} from './objects/index.ts';
import { nodeInfo, NodeTally } from './objects/nodes.ts';
import { ownerChainKeys } from './objects/owners.ts';
import { runningPod, type RunningPod } from './objects/pods.ts';
import { isRecord, metaOf, objectKey, str, type K8s, type Meta, type Obj } from './objects/read.ts';
import { SelectorIndex } from './objects/selectors.ts';
import {
  clientZone,
  serviceOfSlice,
  serviceSelector,
  type SelectingService,
  type ZoneCounts,
} from './objects/services.ts';

/**
 * Kinds read one object at a time into lookups kept up to date entry by entry: a change to one
 * costs its own entry, not a new reading of the whole kind (EndpointSlices change with every
 * pod's readiness).
 */
const PER_ENTRY_KINDS: ReadonlySet<string> = new Set([
  'Service',
  'EndpointSlice',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
]);

/** Kinds whose objects' order is kept as positions: what "the first" of them means. */
const ORDERED_KINDS: ReadonlySet<string> = new Set([...PER_ENTRY_KINDS, 'Job']);

/** What is read from whole kinds, each with the warnings it gave. */
interface Derived {
  policies: Context['policies'];
  cluster: Context['cluster'];
  warnings: Map<string, string[]>;
}

export class IncrementalInput {
  private readonly options: BuildOptions;
  /**
   * Per kind, key → object, in the order they came: a replaced object keeps its place. Pods are
   * not kept here: a running pod is kept in its entry, and a pod that is not running reads
   * nothing, so only a change to itself (which brings it) can change its entry.
   */
  private readonly kinds = new Map<string, Map<string, K8s>>();
  private readonly index: Index = {
    nodes: new Map(),
    namespaceLabels: new Map(),
    byKind: new Map(),
    // Looked up in the kind's map: a second Map of every object by key is memory for nothing.
    byKey: {
      get: (key) => this.kinds.get(kindOfKey(key))?.get(key),
      has: (key) => this.kinds.get(kindOfKey(key))?.has(key) === true,
    },
    warnings: [],
  };
  /** Kinds with a change since the last prepare (all of them before the first). */
  private readonly changedKinds = new Set<string>(KNOWN_KINDS.keys());
  /** A Node's warnings, by its key. */
  private readonly nodeWarnings = new Map<string, string[]>();
  /** What the cluster's facts are computed from, counted node by node. */
  private readonly nodeTally = new NodeTally();
  private derived: Derived | undefined;
  private workloads: K8s[] | undefined;
  /** Workload kinds changed since their list in the index was last made (see `prepare`). */
  private readonly unlistedKinds = new Set<string>();

  /** Running pods by pod key. */
  private readonly running = new Map<string, RunningPod>();
  /** The warnings a pod gave, by pod key (few have any). */
  private readonly podWarnings = new Map<string, string[]>();
  private readonly podsByWorkload = new Map<string, RunningPod[]>();
  private readonly clients: ZoneCounts = { total: new Map(), byWorkload: new Map() };
  /** Running pods of no workload outside system namespaces, by pod key. */
  private readonly orphans = new Map<string, K8s>();
  /**
   * Object key → the running pods whose entry read it (their node, their owner chain as far as
   * it was read: see readsOf). Arrays, not Sets: one per node and per owner, a few entries each,
   * kept for every running pod.
   */
  private readonly readers = new Map<string, string[]>();
  /** Pods whose running entry is computed again at the next prepare. */
  private readonly stalePods = new Set<string>();
  /** Pods set (the object) or removed (undefined) since the last prepare. */
  private readonly changedPods = new Map<string, K8s | undefined>();

  /** Each object of ORDERED_KINDS by key → its place in its kind's order (what "first" means). */
  private readonly positions = new Map<string, number>();
  private nextPosition = 0;
  private readonly services = new SelectorIndex<SelectingService>();
  /** A Service's EndpointSlices, by the Service's `namespace/name`, each by its key. */
  private readonly slicesByService = new Map<string, Map<string, K8s>>();
  /** The Service (`namespace/name`) each EndpointSlice was filed under. */
  private readonly serviceOfSliceKey = new Map<string, string>();
  private readonly budgets = new SelectorIndex<Budget>();
  /** A PodDisruptionBudget's warnings, by its key. */
  private readonly budgetWarnings = new Map<string, string[]>();
  /** Every HPA of a target (`kind/namespace/name`), by the HPA's key: the first one wins. */
  private readonly hpasOfTarget = new Map<string, Map<string, HpaFacts>>();
  /** The target each HPA was filed under, by the HPA's key. */
  private readonly targetOfHpa = new Map<string, string>();
  /** The winning HPA of each target. */
  private readonly hpas = new Map<string, HpaFacts>();
  /** Every Job of an owner (`namespace/name`), by the Job's key. */
  private readonly jobsOfOwner = new Map<string, Map<string, K8s>>();
  /** The owner each Job was filed under, by the Job's key. */
  private readonly ownerOfJob = new Map<string, string>();
  /** The Jobs of each owner, in their kind's order: what jobsByOwner gives. */
  private readonly jobs = new Map<string, K8s[]>();

  constructor(options: BuildOptions = {}) {
    this.options = options;
  }

  /**
   * Adds or replaces one object; one of a kind the builder does not read is ignored. The object
   * is kept, not copied, and must not change afterwards: a running pod's metadata is read from it
   * at each use (KeptPod). Replace it with `set` instead.
   */
  set(raw: unknown): void {
    if (!isRecord(raw)) return;
    const kind = str(raw.kind);
    const apiVersion = str(raw.apiVersion);
    if (kind === undefined || apiVersion === undefined) return;
    if (KNOWN_KINDS.get(kind) !== groupOf(apiVersion)) return;
    const meta = metaOf(raw);
    if (meta === undefined) return;
    const key = objectKey(kind, meta.namespace, meta.name);
    if (kind === 'Pod') {
      this.changedPods.set(key, new KeptPod(raw));
      this.changed(kind, key);
      return;
    }
    const o: K8s = { kind, meta, raw };
    let ofKind = this.kinds.get(kind);
    if (ofKind === undefined) this.kinds.set(kind, (ofKind = new Map<string, K8s>()));
    const previous = ofKind.get(key);
    if (ORDERED_KINDS.has(kind) && previous === undefined)
      this.positions.set(key, this.nextPosition++);
    ofKind.set(key, o);
    if (kind === 'Node') {
      if (previous !== undefined) this.countNode(previous, -1);
      const warnings: string[] = [];
      this.index.nodes.set(meta.name, nodeInfo(o, warnings));
      this.nodeWarnings.set(key, warnings);
      this.countNode(o, 1);
    }
    if (kind === 'Namespace') this.index.namespaceLabels.set(meta.name, meta.labels);
    this.changed(kind, key);
    this.refreshEntry(kind, key, o);
  }

  /** Removes one object, if it is there. */
  remove(kind: string, namespace: string, name: string): void {
    const key = objectKey(kind, namespace, name);
    if (kind === 'Pod') {
      this.changedPods.set(key, undefined);
      this.changed(kind, key);
      return;
    }
    const previous = this.kinds.get(kind)?.get(key);
    if (previous === undefined) return;
    this.kinds.get(kind)?.delete(key);
    if (kind === 'Node') {
      this.countNode(previous, -1);
      this.index.nodes.delete(name);
      this.nodeWarnings.delete(key);
    }
    if (kind === 'Namespace') this.index.namespaceLabels.delete(name);
    this.changed(kind, key);
    this.refreshEntry(kind, key, undefined);
    this.positions.delete(key);
  }

  /**
   * The facts of the objects as they are now, built on demand; valid until the next `set` or
   * `remove`.
   */
  prepare(): PreparedFacts {
    for (const key of this.stalePods)
      this.refreshPod(
        key,
        this.changedPods.has(key) ? this.changedPods.get(key) : this.running.get(key)?.pod,
      );
    this.stalePods.clear();
    this.changedPods.clear();
    const changed = this.changedKinds;
    // Pods are read through their running entries only, never as a list; PER_ENTRY_KINDS
    // through their lookups; Nodes through the index's nodes and the tally; Jobs of a CronJob
    // through `jobs`. The list of a workload kind is read only to build every workload: it is
    // made again then, not at each change to one (a Job, a Deployment). Until then its old list
    // is dropped: it would hold every object replaced since, each rollout's Deployment and
    // ReplicaSets (3.4 MiB after 1,500 changes at 2,500 workloads).
    for (const kind of changed) {
      if (WORKLOAD_KINDS.has(kind)) {
        this.unlistedKinds.add(kind);
        this.index.byKind.delete(kind);
        this.workloads = undefined;
      } else if (kind !== 'Pod' && kind !== 'Node' && !PER_ENTRY_KINDS.has(kind))
        this.index.byKind.set(kind, this.listOf(kind));
    }
    const derived = this.derive(changed);
    changed.clear();
    const warnings = [
      ...[...this.nodeWarnings.values()].flat(),
      ...[...this.podWarnings.values()].flat(),
      ...[...derived.warnings.values()].flat(),
      ...[...this.budgetWarnings.values()].flat(),
    ];
    const ctx: Context = {
      index: { ...this.index, warnings },
      cluster: derived.cluster,
      podsByWorkload: this.podsByWorkload,
      clients: this.clients,
      budgets: this.budgets,
      services: this.services,
      hpas: this.hpas,
      jobs: this.jobs,
      policies: derived.policies,
      images: imagePlatformTable(this.options.imagePlatforms ?? {}),
    };
    return preparedFrom(
      ctx,
      () => (this.workloads ??= this.allWorkloads()),
      orphansWarning([...this.orphans.values()]),
    );
  }

  /**
   * The workloads (`kind/namespace/name`) of the running pods that were on these nodes at the
   * last prepare: what a change to the nodes can affect, besides pods that changed themselves.
   */
  workloadsOnNodes(nodes: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const node of nodes)
      for (const pod of this.readers.get(objectKey('Node', '', node)) ?? []) {
        const workload = this.running.get(pod)?.workload;
        if (workload !== undefined) out.add(workload);
      }
    return out;
  }

  /** Every workload, with the lists of the workload kinds that changed made again. */
  private allWorkloads(): K8s[] {
    for (const kind of this.unlistedKinds) this.index.byKind.set(kind, this.listOf(kind));
    this.unlistedKinds.clear();
    return indexedWorkloads(this.index);
  }

  /** The objects of a kind, in their order. */
  private listOf(kind: string): K8s[] {
    return [...(this.kinds.get(kind)?.values() ?? [])];
  }

  /** Counts a Node in the cluster's facts, or out (with the info it was counted with). */
  private countNode(o: K8s, by: 1 | -1): void {
    const info = this.index.nodes.get(o.meta.name);
    if (info !== undefined) this.nodeTally.countNode(info, by);
    this.nodeTally.countSchemes(o.meta.labels, by);
  }

  private changed(kind: string, key: string): void {
    this.changedKinds.add(kind);
    if (kind === 'Pod') this.stalePods.add(key);
    for (const pod of this.readers.get(key) ?? []) this.stalePods.add(pod);
  }

  /** What is read from whole kinds, again for the kinds that changed. */
  private derive(changed: ReadonlySet<string>): Derived {
    const any = (...kinds: string[]): boolean =>
      this.derived === undefined || kinds.some((kind) => changed.has(kind));
    const previous = this.derived;
    const warnings = new Map(previous?.warnings);
    /** The index with its own warnings, for what reads a kind. */
    const reading = (part: string): Index => {
      const list: string[] = [];
      warnings.set(part, list);
      return { ...this.index, warnings: list };
    };
    this.derived = {
      policies:
        previous && !any('SavingsPolicy')
          ? previous.policies
          : policiesOf(reading('policies'), this.options),
      cluster: previous && !any('Node') ? previous.cluster : this.nodeTally.facts(this.options),
      warnings,
    };
    return this.derived;
  }

  /** Brings the lookup entry of one object of PER_ENTRY_KINDS up to date (`o`: it is gone). */
  private refreshEntry(kind: string, key: string, o: K8s | undefined): void {
    if (kind === 'Service') this.refreshService(key);
    else if (kind === 'EndpointSlice') {
      const after = o === undefined ? undefined : serviceOfSlice(o);
      const entry = o === undefined || after === undefined ? undefined : { group: after, value: o };
      for (const service of refile(this.slicesByService, this.serviceOfSliceKey, key, entry))
        this.refreshService(serviceKey(service));
    } else if (kind === 'PodDisruptionBudget') this.refreshBudget(key, o);
    else if (kind === 'Job') {
      const owner = o === undefined ? undefined : jobOwnerKey(o);
      const entry = o === undefined || owner === undefined ? undefined : { group: owner, value: o };
      for (const group of refile(this.jobsOfOwner, this.ownerOfJob, key, entry))
        this.listJobs(group);
    } else if (kind === 'HorizontalPodAutoscaler') {
      const scales = o === undefined ? undefined : hpaOf(o);
      const entry = scales && { group: scales.target, value: scales.facts };
      for (const target of refile(this.hpasOfTarget, this.targetOfHpa, key, entry))
        this.electHpa(target);
    }
  }

  private refreshBudget(key: string, o: K8s | undefined): void {
    this.budgets.delete(key);
    this.budgetWarnings.delete(key);
    if (o === undefined) return;
    const warnings: string[] = [];
    const budget = budgetOf(o, warnings);
    if (warnings.length > 0) this.budgetWarnings.set(key, warnings);
    if (budget !== undefined)
      this.budgets.set(
        key,
        this.position(key),
        o.meta.namespace,
        budget.selector.matchLabels,
        budget,
      );
  }

  /** A Service's entry, again from it and its EndpointSlices (in their kind's order). */
  private refreshService(key: string): void {
    this.services.delete(key);
    const service = this.kinds.get('Service')?.get(key);
    if (service === undefined) return;
    const selector = serviceSelector(service.raw.spec);
    if (selector === undefined) return;
    const slices = [
      ...(this.slicesByService.get(`${service.meta.namespace}/${service.meta.name}`) ?? []),
    ]
      .sort(([a], [b]) => this.position(a) - this.position(b))
      .map(([, slice]) => slice);
    this.services.set(key, this.position(key), service.meta.namespace, selector, {
      service,
      selector,
      slices,
    });
  }

  /** The HPA that scales `target`: the first in their kind's order. */
  private electHpa(target: string): void {
    const ofTarget = this.hpasOfTarget.get(target);
    let first: [string, HpaFacts] | undefined;
    for (const entry of ofTarget ?? [])
      if (first === undefined || this.position(entry[0]) < this.position(first[0])) first = entry;
    if (first === undefined) this.hpas.delete(target);
    else this.hpas.set(target, first[1]);
  }

  /** The Jobs of one owner again, in their kind's order (as jobsByOwner lists them). */
  private listJobs(owner: string): void {
    const ofOwner = [...(this.jobsOfOwner.get(owner) ?? [])];
    if (ofOwner.length === 0) this.jobs.delete(owner);
    else
      this.jobs.set(
        owner,
        ofOwner.sort(([a], [b]) => this.position(a) - this.position(b)).map(([, job]) => job),
      );
  }

  private position(key: string): number {
    return this.positions.get(key) ?? Number.MAX_SAFE_INTEGER;
  }

  /** Computes one pod's running entry again (or drops it: the pod is gone, finished, unscheduled). */
  private refreshPod(key: string, pod: K8s | undefined): void {
    this.forgetPod(key);
    if (pod === undefined) return;
    const warnings: string[] = [];
    const entry = runningPod(pod, { ...this.index, warnings });
    if (warnings.length > 0) this.podWarnings.set(key, warnings);
    // A pod that is not running has no entry, whatever its node and owners say: it reads nothing.
    if (entry === undefined) return;
    this.running.set(key, entry);
    for (const read of readsOf(pod, this.index)) {
      const pods = this.readers.get(read);
      if (pods === undefined) this.readers.set(read, [key]);
      else pods.push(key);
    }
    if (entry.workload === undefined) {
      if (!SYSTEM_NAMESPACES.has(pod.meta.namespace)) this.orphans.set(key, pod);
    } else {
      const list = this.podsByWorkload.get(entry.workload);
      if (list === undefined) this.podsByWorkload.set(entry.workload, [entry]);
      else {
        // One copy of the workload's key for all its pods, not one each.
        const shared = list[0]?.workload;
        if (shared !== undefined) entry.workload = shared;
        list.push(entry);
      }
    }
    this.countClient(entry, 1);
  }

  private forgetPod(key: string): void {
    this.podWarnings.delete(key);
    this.orphans.delete(key);
    const entry = this.running.get(key);
    if (entry === undefined) return;
    this.running.delete(key);
    // Every key it may have read: the index may have changed since its entry was made.
    for (const read of readsOf(entry.pod)) {
      const pods = this.readers.get(read);
      const at = pods?.indexOf(key) ?? -1;
      if (pods === undefined || at < 0) continue;
      pods.splice(at, 1);
      if (pods.length === 0) this.readers.delete(read);
    }
    if (entry.workload !== undefined) {
      const list = this.podsByWorkload.get(entry.workload) ?? [];
      list.splice(list.indexOf(entry), 1);
      if (list.length === 0) this.podsByWorkload.delete(entry.workload);
    }
    this.countClient(entry, -1);
  }

  /** Adds a running pod to the client pods per zone (or takes it away), as clientZones counts. */
  private countClient(entry: RunningPod, by: 1 | -1): void {
    const zone = clientZone(entry);
    if (zone === undefined) return;
    addCount(this.clients.total, zone, by);
    if (entry.workload === undefined) return;
    const counts = this.clients.byWorkload.get(entry.workload) ?? new Map<string, number>();
    addCount(counts, zone, by);
    if (counts.size === 0) this.clients.byWorkload.delete(entry.workload);
    else this.clients.byWorkload.set(entry.workload, counts);
  }
}

/**
 * A pod as its running entry keeps it: the metadata is read from the object at each use, not
 * kept. Running pods are most of what the input keeps (50,000 at the scale benchmark's size),
 * and their metadata and wrapper cost 120 bytes each; this costs 32, and a few short-lived
 * reads of a small object at each build of the pod's workload.
 */
class KeptPod implements K8s {
  readonly raw: Obj;
  constructor(raw: Obj) {
    this.raw = raw;
  }
  // A getter, not a field: a field would take 8 more bytes in each of 50,000 pods.
  // eslint-disable-next-line @typescript-eslint/class-literal-property-style
  get kind(): string {
    return 'Pod';
  }
  get meta(): Meta {
    const meta = metaOf(this.raw);
    // `set` keeps only pods whose metadata reads, and the object does not change.
    if (meta === undefined) throw new Error('a kept pod lost its metadata');
    return meta;
  }
}

/** The kind of an `objectKey`. */
function kindOfKey(key: string): string {
  return key.slice(0, key.indexOf('/'));
}

/**
 * Files `key` in the group `entry` names, with its value (no entry: in none), leaving the group
 * it was in (`groupOfKey` says which); a group left empty goes. Returns the groups it left and
 * joined, whose lookups are to be brought up to date.
 */
function refile<V>(
  members: Map<string, Map<string, V>>,
  groupOfKey: Map<string, string>,
  key: string,
  entry: { group: string; value: V } | undefined,
): string[] {
  const before = groupOfKey.get(key);
  if (before !== undefined && before !== entry?.group) {
    const left = members.get(before);
    left?.delete(key);
    if (left?.size === 0) members.delete(before);
    groupOfKey.delete(key);
  }
  if (entry !== undefined) {
    members.set(
      entry.group,
      (members.get(entry.group) ?? new Map<string, V>()).set(key, entry.value),
    );
    groupOfKey.set(key, entry.group);
  }
  return [...new Set([before, entry?.group])].filter((group) => group !== undefined);
}

/** A Service's object key from its `namespace/name`. */
function serviceKey(namespaceAndName: string): string {
  const slash = namespaceAndName.indexOf('/');
  return objectKey('Service', namespaceAndName.slice(0, slash), namespaceAndName.slice(slash + 1));
}

/**
 * The keys of the objects a running pod's entry reads: its node and its owner chain. With the
 * index, only what the entry reads as the index is now: the owner's guessed parents (a
 * Deployment's or Rollout's name, a CronJob's) are read only while the owner itself is missing;
 * filing every pod of a Deployment under them took 2 of its 3 keys.
 */
function readsOf(pod: K8s, index?: Index): string[] {
  const node = str(isRecord(pod.raw.spec) ? pod.raw.spec.nodeName : undefined);
  const reads = ownerChainKeys(pod, index);
  if (node !== undefined) reads.push(objectKey('Node', '', node));
  return reads;
}
