import { IncrementalInput } from '../../recommender/facts-incremental.ts';
import { objectKey } from '../../recommender/objects/read.ts';
import type { ImagePlatformsFact, WorkloadFacts } from '../../recommender/facts.ts';
import { matchesSelector } from '../../recommender/policy.ts';
import { applyTraffic, type TrafficInput } from '../../recommender/traffic.ts';
import type { ClusterCache } from '../cache.ts';
import { canonicalDigest } from '../canonical.ts';
import { imageRequests, type ImagePlatformSource } from '../images.ts';
import type { Projected } from '../kube/projections.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import { errorMessage, type Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { ChangeTracker, WORKLOAD_RESOURCES, type Changes } from './dirty.ts';
import { parseKey, workloadKey, type WorkloadRef } from './keys.ts';

export interface RebuildResult {
  /** Workload keys whose facts changed, appeared or went since the last rebuild. */
  changed: string[];
  /**
   * Those of `changed` that no change of their own marked: they changed with what many
   * workloads share (client weights, an image's platforms, a resync) and can wait behind the rest.
   */
  refreshed: Set<string>;
  /**
   * Those of `changed` whose own object was created, deleted or edited (spec, labels,
   * annotations): they go before those only their pods, ReplicaSets or Services moved.
   */
  edited: Set<string>;
  /** Some image's platforms could not be read: rebuild again later to retry. */
  lookupFailed: boolean;
  /** How many workloads' facts this rebuild computed (all of them on a full rebuild). */
  built: number;
  /** Whether every workload was rebuilt, not only those the changes marked. */
  full: boolean;
  /**
   * The cluster's client pods per zone moved and the workloads with a Service were not brought
   * up to date with it: a later rebuild with `changes.markClients()` does that.
   */
  clientsMoved: boolean;
}

/** The workload a `wl/<namespace>/<kind>/<name>` key names. */
function refOf(key: string): WorkloadRef | undefined {
  const parsed = parseKey(key);
  return parsed.type === 'workload' ? parsed.workload : undefined;
}

/** `wl/<namespace>/<kind>/<name>` → the builder's `<kind>/<namespace>/<name>`. */
function builderKey(key: string): string {
  const ref = refOf(key);
  return ref ? objectKey(ref.kind, ref.namespace, ref.name) : key;
}

/** The builder's `<kind>/<namespace>/<name>` → `wl/<namespace>/<kind>/<name>`. */
function fromBuilderKey(key: string): string {
  const [kind = '', namespace = '', ...name] = key.split('/');
  return workloadKey(namespace, kind, name.join('/'));
}

/**
 * Every analysed workload's facts, kept up to date incrementally. Changes in the caches are told
 * to `changes` (a ChangeTracker); a rebuild indexes the caches once, then computes the facts of
 * only the workloads those changes can affect — all of them when what every workload shares
 * (the cluster's facts) changed, every workload with a Service when the cluster's client pods
 * per zone did and the changes ask for it (`markClients`), and all of them on a full rebuild
 * (the first, each resync, while traffic is measured). A digest of each workload's facts is kept, so a rebuild reports exactly the
 * workloads whose facts changed: only those are reconciled.
 */
export class WorkloadFactsCache {
  readonly changes = new ChangeTracker();
  private readonly facts = new Map<string, WorkloadFacts>();
  private readonly digests = new Map<string, string>();
  /** Workload keys with facts, by namespace. */
  private readonly byNamespace = new Map<string, Set<string>>();
  /** Workloads with a Service: their client weights follow the whole cluster's pods. */
  private readonly withServices = new Set<string>();
  /** Workload keys by the images their containers run. */
  private readonly byImage = new Map<string, Set<string>>();
  private sharedDigests: { cluster: string; clients: string } | undefined;
  private imageDigests = new Map<string, string>();
  /** The cached objects, indexed for the builder; kept up to date with the recorded changes. */
  private input: IncrementalInput | undefined;

  get(key: string): WorkloadFacts | undefined {
    return this.facts.get(key);
  }

  has(key: string): boolean {
    return this.facts.has(key);
  }

  keys(): IterableIterator<string> {
    return this.facts.keys();
  }

  get size(): number {
    return this.facts.size;
  }

  /** Forgets what was compared, so the next rebuild reports every workload as changed. */
  forgetComparisons(): void {
    this.digests.clear();
    this.changes.markAll();
  }

  /** Marks the workloads whose images could not be looked up, to ask the registry again. */
  retryImageLookups(): void {
    for (const [key, facts] of this.facts)
      if (Object.values(facts.imagePlatforms).some((fact) => 'error' in fact))
        this.changes.markWorkloads([key]);
  }

  async rebuild(
    cache: ClusterCache,
    sources: {
      imagePlatforms?: ImagePlatformSource | undefined;
      /** The latest traffic measurement (or why there is none); undefined without a source. */
      traffic?: TrafficInput | undefined;
      metrics: Metrics;
      log: Logger;
    },
  ): Promise<RebuildResult> {
    const taken = this.changes.take();
    try {
      return await this.rebuildMarked(cache, sources, taken);
    } catch (error) {
      // What was taken is not lost: the next rebuild does everything, edits still first.
      this.changes.markAll(taken.edited);
      throw error;
    }
  }

  private async rebuildMarked(
    cache: ClusterCache,
    sources: Parameters<WorkloadFactsCache['rebuild']>[1],
    taken: Changes,
  ): Promise<RebuildResult> {
    // Traffic is attributed across workloads (a flow names both ends): measured, every build is full.
    let full = taken.all || sources.traffic !== undefined || this.sharedDigests === undefined;
    const marked = this.resolve(taken);
    const dirty = full ? new Set<string>() : new Set(marked);
    const { input, objects } = this.updateInput(cache, taken, full);
    full ||= objects !== undefined;
    const prepared = input.prepare();
    const shared = {
      cluster: canonicalDigest(prepared.shared.cluster),
      clients: canonicalDigest(
        [...prepared.shared.clientZones].sort(([a], [b]) => a.localeCompare(b)),
      ),
    };
    // Any pod that starts, stops or moves anywhere moves the client pods per zone, which every
    // workload with a Service reads (its client weights): refreshing them all at each such batch
    // would rewrite most recommendations for every pod event. They wait for `markClients`; the
    // workloads rebuilt meanwhile get the current weights anyway.
    let clientsMoved = false;
    if (this.sharedDigests?.cluster !== shared.cluster) full = true;
    else if (!full && this.sharedDigests.clients !== shared.clients) {
      if (taken.clients) for (const key of this.withServices) dirty.add(key);
      else {
        clientsMoved = true;
        shared.clients = this.sharedDigests.clients;
      }
    }
    this.sharedDigests = shared;

    const images: Record<string, ImagePlatformsFact> = {};
    let lookupFailed = false;
    const lookUp = async (of: readonly unknown[]): Promise<string[]> => {
      if (!sources.imagePlatforms) return [];
      let found: Record<string, ImagePlatformsFact>;
      try {
        found = await sources.imagePlatforms.resolve(imageRequests(of));
      } catch (error) {
        sources.metrics.sourceErrors.inc({ source: 'registry' });
        sources.log.warn('could not look up image platforms', { error: errorMessage(error) });
        return [];
      }
      const moved: string[] = [];
      for (const [image, fact] of Object.entries(found)) {
        images[image] = fact;
        if ('error' in fact) lookupFailed = true;
        const d = canonicalDigest(fact);
        if (this.imageDigests.get(image) !== d) moved.push(image);
        this.imageDigests.set(image, d);
      }
      return moved;
    };
    if (full) {
      this.imageDigests = new Map();
      // Every image, of what the reindex listed or (the cluster's facts changed) of everything.
      await lookUp(objects ?? listAll(cache));
    } else {
      // An image whose platforms or digest moved changes every workload that runs it.
      const moved = await lookUp(workloadObjects(cache, dirty));
      const more = new Set<string>();
      for (const image of moved)
        for (const key of this.byImage.get(image) ?? []) if (!dirty.has(key)) more.add(key);
      if (more.size > 0) {
        await lookUp(workloadObjects(cache, more));
        for (const key of more) dirty.add(key);
      }
    }

    const built = full
      ? prepared.build(undefined, images)
      : prepared.build(new Set([...dirty].map(builderKey)), images);
    if (sources.traffic !== undefined) {
      const measured = applyTraffic(built.facts, sources.traffic);
      built.facts = measured.facts;
      built.warnings.push(...measured.warnings);
    }
    const fresh = new Map<string, WorkloadFacts>();
    for (const workload of built.facts)
      fresh.set(workloadKey(workload.namespace, workload.kind, workload.name), workload);
    const changed: string[] = [];
    for (const key of full ? new Set([...this.facts.keys(), ...fresh.keys()]) : dirty) {
      const facts = fresh.get(key);
      if (facts === undefined) {
        if (this.facts.has(key) || this.digests.has(key)) changed.push(key);
        this.forget(key);
        continue;
      }
      const d = canonicalDigest(facts);
      if (this.digests.get(key) !== d) changed.push(key);
      this.remember(key, facts, d);
    }
    for (const warning of built.warnings) sources.log.debug('facts', { warning });
    const refreshed = new Set(changed.filter((key) => !marked.has(key)));
    return {
      changed,
      refreshed,
      edited: new Set(changed.filter((key) => taken.edited.has(key))),
      lookupFailed,
      built: built.facts.length,
      full,
      clientsMoved,
    };
  }

  /**
   * Brings the kept index up to date: a full rebuild (or the first) indexes every cached object
   * anew, so any drift of the kept index ends at the resync, and returns them; any other reads
   * again only the objects that changed.
   */
  private updateInput(
    cache: ClusterCache,
    taken: Changes,
    full: boolean,
  ): { input: IncrementalInput; objects?: Projected[] } {
    if (!full && this.input !== undefined) {
      for (const changed of taken.objects.values()) {
        if (changed.deleted)
          this.input.remove(RESOURCES[changed.resource].kind, changed.namespace, changed.name);
        const now = cache.get(changed.resource, changed.key);
        if (now !== undefined) this.input.set(now);
      }
      return { input: this.input };
    }
    const objects = listAll(cache);
    this.input = undefined; // not two indexes at once
    const input = new IncrementalInput(
      cache.kubernetesMinor !== undefined ? { kubernetesMinor: cache.kubernetesMinor } : {},
    );
    for (const object of objects) input.set(object);
    this.input = input;
    return { input, objects };
  }

  /** The workload keys the recorded changes can affect. */
  private resolve(changes: Changes): Set<string> {
    const dirty = new Set(changes.workloads);
    for (const namespace of changes.namespaces)
      for (const key of this.byNamespace.get(namespace) ?? []) dirty.add(key);
    // Facts match selectors with the labels of the pod template, which they keep; a workload
    // whose template changed is marked by its own change.
    for (const { namespace, selector } of changes.selectors)
      for (const key of this.byNamespace.get(namespace) ?? []) {
        const labels = this.facts.get(key)?.template.labels;
        if (labels !== undefined && matchesSelector(selector, labels)) dirty.add(key);
      }
    // The pods each node's running pods were read with at the last build; a pod that moved
    // since is marked by its own change.
    if (changes.nodes.size > 0 && this.input !== undefined)
      for (const workload of this.input.workloadsOnNodes(changes.nodes))
        dirty.add(fromBuilderKey(workload));
    return dirty;
  }

  private remember(key: string, facts: WorkloadFacts, factsDigest: string): void {
    this.unindex(key);
    this.facts.set(key, facts);
    this.digests.set(key, factsDigest);
    addTo(this.byNamespace, facts.namespace, key);
    if (facts.services.length > 0) this.withServices.add(key);
    for (const container of facts.template.containers) addTo(this.byImage, container.image, key);
  }

  private forget(key: string): void {
    this.unindex(key);
    this.facts.delete(key);
    this.digests.delete(key);
  }

  private unindex(key: string): void {
    const old = this.facts.get(key);
    if (old === undefined) return;
    removeFrom(this.byNamespace, old.namespace, key);
    this.withServices.delete(key);
    for (const container of old.template.containers) removeFrom(this.byImage, container.image, key);
  }
}

function addTo(index: Map<string, Set<string>>, at: string, key: string): void {
  const set = index.get(at);
  if (set === undefined) index.set(at, new Set([key]));
  else set.add(key);
}

function removeFrom(index: Map<string, Set<string>>, at: string, key: string): void {
  const set = index.get(at);
  if (set === undefined) return;
  set.delete(key);
  if (set.size === 0) index.delete(at);
}

/** Every cached object the facts read. */
function listAll(cache: ClusterCache): Projected[] {
  const objects: Projected[] = [];
  for (const name of Object.keys(RESOURCES) as ResourceName[])
    if (name !== 'workloadrecommendations') objects.push(...cache.list(name));
  return objects;
}

/** The cached objects of these workloads (for their images). */
function workloadObjects(cache: ClusterCache, keys: Iterable<string>): Projected[] {
  const out: Projected[] = [];
  for (const key of keys) {
    const ref = refOf(key);
    const resource = ref && WORKLOAD_RESOURCES[ref.kind];
    const object = resource && cache.get(resource, `${ref.namespace}/${ref.name}`);
    if (object) out.push(object);
  }
  return out;
}
