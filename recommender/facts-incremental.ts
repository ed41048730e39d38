/**
 * The builder's input kept indexed between builds, one object at a time: what the operator uses
 * so that a change costs what it touches, not a new index of the whole cluster. `set` and
 * `remove` record a change; `prepare` brings what they made stale up to date — a pod's running
 * entry when the pod, its node or its owner chain changed (and the client pods per zone and pods
 * per workload with it), and a kind's list and what is read from it (Services, budgets, HPAs,
 * Jobs, policies, the cluster's facts) when an object of that kind changed — and returns the
 * same PreparedFacts as `prepareFacts` over the same objects. Pure: no I/O, no clock.
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
import { hpasByTarget, jobsByOwner, readBudgets } from './objects/controllers.ts';
import {
  groupOf,
  KNOWN_KINDS,
  SYSTEM_NAMESPACES,
  WORKLOAD_KINDS,
  type Index,
} from './objects/index.ts';
import { clusterFacts, nodeInfo } from './objects/nodes.ts';
import { ownerChainKeys } from './objects/owners.ts';
import { runningPod, type RunningPod } from './objects/pods.ts';
import { isRecord, metaOf, objectKey, str, type K8s } from './objects/read.ts';
import { clientZone, readServices, type ZoneCounts } from './objects/services.ts';

/** What is read from whole kinds, each with the warnings it gave. */
interface Derived {
  policies: Context['policies'];
  cluster: Context['cluster'];
  budgets: Context['budgets'];
  services: Context['services'];
  hpas: Context['hpas'];
  jobs: Context['jobs'];
  warnings: Map<string, string[]>;
}

export class IncrementalInput {
  private readonly options: BuildOptions;
  private readonly index: Index = {
    nodes: new Map(),
    namespaceLabels: new Map(),
    byKind: new Map(),
    byKey: new Map(),
    warnings: [],
  };
  /** Per kind, key → object, in the order they came: a replaced object keeps its place. */
  private readonly kinds = new Map<string, Map<string, K8s>>();
  /** Kinds with a change since the last prepare (all of them before the first). */
  private readonly changedKinds = new Set<string>(KNOWN_KINDS.keys());
  /** A Node's warnings, by its key. */
  private readonly nodeWarnings = new Map<string, string[]>();
  private derived: Derived | undefined;
  private workloads: K8s[] | undefined;

  /** Running pods by pod key. */
  private readonly running = new Map<string, RunningPod>();
  /** The warnings a pod gave, by pod key (few have any). */
  private readonly podWarnings = new Map<string, string[]>();
  private readonly podsByWorkload = new Map<string, RunningPod[]>();
  private readonly clients: ZoneCounts = { total: new Map(), byWorkload: new Map() };
  /** Running pods of no workload outside system namespaces, by pod key. */
  private readonly orphans = new Map<string, K8s>();
  /** Object key → the running pods whose entry read it (their node, their owner chain). */
  private readonly readers = new Map<string, Set<string>>();
  /** Pods whose running entry is computed again at the next prepare. */
  private readonly stalePods = new Set<string>();

  constructor(options: BuildOptions = {}) {
    this.options = options;
  }

  /** Adds or replaces one object; one of a kind the builder does not read is ignored. */
  set(raw: unknown): void {
    if (!isRecord(raw)) return;
    const kind = str(raw.kind);
    const apiVersion = str(raw.apiVersion);
    if (kind === undefined || apiVersion === undefined) return;
    if (KNOWN_KINDS.get(kind) !== groupOf(apiVersion)) return;
    const meta = metaOf(raw);
    if (meta === undefined) return;
    const o: K8s = { kind, meta, raw };
    const key = objectKey(kind, meta.namespace, meta.name);
    let ofKind = this.kinds.get(kind);
    if (ofKind === undefined) this.kinds.set(kind, (ofKind = new Map<string, K8s>()));
    ofKind.set(key, o);
    this.index.byKey.set(key, o);
    if (kind === 'Node') {
      const warnings: string[] = [];
      this.index.nodes.set(meta.name, nodeInfo(o, warnings));
      this.nodeWarnings.set(key, warnings);
    }
    if (kind === 'Namespace') this.index.namespaceLabels.set(meta.name, meta.labels);
    this.changed(kind, key);
  }

  /** Removes one object, if it is there. */
  remove(kind: string, namespace: string, name: string): void {
    const key = objectKey(kind, namespace, name);
    if (this.kinds.get(kind)?.delete(key) !== true) return;
    this.index.byKey.delete(key);
    if (kind === 'Node') {
      this.index.nodes.delete(name);
      this.nodeWarnings.delete(key);
    }
    if (kind === 'Namespace') this.index.namespaceLabels.delete(name);
    this.changed(kind, key);
  }

  /**
   * The facts of the objects as they are now, built on demand; valid until the next `set` or
   * `remove`.
   */
  prepare(): PreparedFacts {
    for (const key of this.stalePods) this.refreshPod(key);
    this.stalePods.clear();
    const changed = this.changedKinds;
    // Pods are read through their running entries only, never as a list.
    for (const kind of changed)
      if (kind !== 'Pod') this.index.byKind.set(kind, [...(this.kinds.get(kind)?.values() ?? [])]);
    const derived = this.derive(changed);
    if ([...changed].some((kind) => WORKLOAD_KINDS.has(kind))) this.workloads = undefined;
    changed.clear();
    const warnings = [
      ...[...this.nodeWarnings.values()].flat(),
      ...[...this.podWarnings.values()].flat(),
      ...[...derived.warnings.values()].flat(),
    ];
    const ctx: Context = {
      index: { ...this.index, warnings },
      cluster: derived.cluster,
      podsByWorkload: this.podsByWorkload,
      clients: this.clients,
      budgets: derived.budgets,
      services: derived.services,
      hpas: derived.hpas,
      jobs: derived.jobs,
      policies: derived.policies,
      images: imagePlatformTable(this.options.imagePlatforms ?? {}),
    };
    return preparedFrom(
      ctx,
      () => (this.workloads ??= indexedWorkloads(this.index)),
      orphansWarning([...this.orphans.values()]),
    );
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
      cluster:
        previous && !any('Node')
          ? previous.cluster
          : clusterFacts(
              this.index.nodes.values(),
              this.index.byKind.get('Node') ?? [],
              this.options,
            ),
      budgets:
        previous && !any('PodDisruptionBudget')
          ? previous.budgets
          : readBudgets(reading('budgets')),
      services:
        previous && !any('Service', 'EndpointSlice')
          ? previous.services
          : readServices(reading('services')),
      hpas: previous && !any('HorizontalPodAutoscaler') ? previous.hpas : hpasByTarget(this.index),
      jobs: previous && !any('Job') ? previous.jobs : jobsByOwner(this.index),
      warnings,
    };
    return this.derived;
  }

  /** Computes one pod's running entry again (or drops it: the pod is gone, finished, unscheduled). */
  private refreshPod(key: string): void {
    this.forgetPod(key);
    const pod = this.kinds.get('Pod')?.get(key);
    if (pod === undefined) return;
    const warnings: string[] = [];
    const entry = runningPod(pod, { ...this.index, warnings });
    if (warnings.length > 0) this.podWarnings.set(key, warnings);
    // A pod that is not running has no entry, whatever its node and owners say: it reads nothing.
    if (entry === undefined) return;
    this.running.set(key, entry);
    for (const read of readsOf(pod)) {
      const set = this.readers.get(read);
      if (set === undefined) this.readers.set(read, new Set([key]));
      else set.add(key);
    }
    if (entry.workload === undefined) {
      if (!SYSTEM_NAMESPACES.has(pod.meta.namespace)) this.orphans.set(key, pod);
    } else {
      const list = this.podsByWorkload.get(entry.workload);
      if (list === undefined) this.podsByWorkload.set(entry.workload, [entry]);
      else list.push(entry);
    }
    this.countClient(entry, 1);
  }

  private forgetPod(key: string): void {
    this.podWarnings.delete(key);
    this.orphans.delete(key);
    const entry = this.running.get(key);
    if (entry === undefined) return;
    this.running.delete(key);
    for (const read of readsOf(entry.pod)) {
      const set = this.readers.get(read);
      set?.delete(key);
      if (set?.size === 0) this.readers.delete(read);
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

/** The keys of the objects a running pod's entry reads: its node and its owner chain. */
function readsOf(pod: K8s): string[] {
  const node = str(isRecord(pod.raw.spec) ? pod.raw.spec.nodeName : undefined);
  return [...(node === undefined ? [] : [objectKey('Node', '', node)]), ...ownerChainKeys(pod)];
}

function addCount(counts: Map<string, number>, at: string, by: number): void {
  const n = (counts.get(at) ?? 0) + by;
  if (n === 0) counts.delete(at);
  else counts.set(at, n);
}
