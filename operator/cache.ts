import { systemClock, type Clock, type Timer } from './clock.ts';
import type { KubeApi } from './kube/client.ts';
import { Informer } from './kube/informer.ts';
import { keptFor, projectionFor, type Projected } from './kube/projections.ts';
import { RESOURCES, type ResourceName } from './kube/resources.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';

export interface ClusterCacheOptions {
  client: KubeApi;
  log: Logger;
  metrics: Metrics;
  clock?: Clock;
  /**
   * Told of every change to a cached object (with the version it replaces, for an update or a
   * delete); must only enqueue work and never throw.
   */
  onChange: (resource: ResourceName, object: Projected, previous?: Projected) => void;
  /** How often to look for Argo Rollouts while it is not installed. */
  discoveryIntervalMs?: number;
  informer?: {
    idleTimeoutMs?: number;
    minWatchTimeoutSeconds?: number;
    relistIntervalMs?: number;
    backoffMaxMs?: number;
  };
}

export interface CacheStat {
  resource: string;
  objects: number;
  lastEventAgeSeconds: number;
}

/**
 * The list-watch caches of every resource kopek reads, shared by its controllers. Argo Rollouts
 * is watched only once its API is served, found by discovery without a restart. Caches fill on
 * standby replicas too, so a new leader starts warm.
 */
export class ClusterCache {
  private readonly options: ClusterCacheOptions;
  private readonly clock: Clock;
  private readonly informers = new Map<ResourceName, Informer<Projected>>();
  private rolloutsDiscovery: Timer | undefined;
  /** Kubernetes minor version of the API server, when it answered /version. */
  kubernetesMinor: number | undefined;

  constructor(options: ClusterCacheOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
  }

  async start(): Promise<void> {
    const { client, log } = this.options;
    const version = await client.serverVersion().catch(() => undefined);
    const minor = Number.parseInt(version?.minor ?? '', 10);
    if (Number.isFinite(minor)) this.kubernetesMinor = minor;
    for (const name of Object.keys(RESOURCES) as ResourceName[]) {
      if (name === 'rollouts' && !(await this.servesRollouts())) {
        log.info('Argo Rollouts is not installed; watching for it to appear');
        this.rolloutsDiscovery = this.clock.setInterval(() => {
          void this.discoverRollouts();
        }, this.options.discoveryIntervalMs ?? 60_000);
        continue;
      }
      this.startInformer(name);
    }
  }

  async stop(): Promise<void> {
    this.rolloutsDiscovery?.cancel();
    await Promise.all([...this.informers.values()].map((informer) => informer.stop()));
  }

  get synced(): boolean {
    return [...this.informers.values()].every((informer) => informer.synced);
  }

  /** Informers waiting to list or watch again after a failure. */
  get retrying(): number {
    return [...this.informers.values()].filter((informer) => informer.retrying).length;
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.informers.values()].map((informer) => informer.waitForSync()));
  }

  /** Every cached object of a resource (none while it is not watched). */
  list(name: ResourceName): Iterable<Projected> {
    return this.informers.get(name)?.list() ?? [];
  }

  /** One cached object by `namespace/name` (or `name` for cluster-scoped resources). */
  get(name: ResourceName, key: string): Projected | undefined {
    return this.informers.get(name)?.get(key);
  }

  /** Each cache's size and how long ago it last heard from the API server (for metrics). */
  stats(): CacheStat[] {
    const now = this.clock.now();
    return [...this.informers.values()].map((informer) => ({
      resource: informer.resource,
      objects: informer.size,
      lastEventAgeSeconds: informer.lastEventAt === 0 ? 0 : (now - informer.lastEventAt) / 1000,
    }));
  }

  private servesRollouts(): Promise<boolean> {
    return this.options.client.serves(RESOURCES.rollouts).catch(() => false);
  }

  /** Argo Rollouts installed after kopek started: watch Rollouts from now on. */
  private async discoverRollouts(): Promise<void> {
    if (this.informers.has('rollouts') || !(await this.servesRollouts())) return;
    this.rolloutsDiscovery?.cancel();
    this.options.log.info('Argo Rollouts appeared; watching rollouts');
    this.startInformer('rollouts');
  }

  private startInformer(name: ResourceName): void {
    const { client, log, metrics } = this.options;
    const type = RESOURCES[name];
    const keep = keptFor(type);
    const informer = new Informer<Projected>({
      type,
      client,
      project: projectionFor(type),
      ...(keep !== undefined ? { keep } : {}),
      log,
      clock: this.clock,
      observer: {
        relisted: (resource, reason) => {
          metrics.cacheRelists.inc({ resource, reason });
        },
        watchRestarted: (resource, reason) => {
          metrics.cacheWatchRestarts.inc({ resource, reason });
        },
        event: (resource, eventType) => {
          metrics.cacheEvents.inc({ resource, type: eventType });
        },
      },
      ...this.options.informer,
      onChange: (_change, object, previous) => {
        this.options.onChange(name, object, previous);
      },
    });
    this.informers.set(name, informer);
    informer.start();
  }
}
