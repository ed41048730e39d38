import type {
  SavingsPolicy,
  WorkloadRecommendation,
  WorkloadRecommendationStatus,
} from '../recommender/api/v1alpha1.ts';
import { factsFromObjects } from '../recommender/facts-from-objects.ts';
import type { ImagePlatformsFact, WorkloadFacts } from '../recommender/facts.ts';
import { formatUSD, type PriceBook } from '../recommender/pricing.ts';
import {
  recommend,
  recommendationName,
  toWorkloadRecommendation,
} from '../recommender/recommend.ts';
import { canonicalJson } from './canonical.ts';
import { KubeApiError, type KubeClient } from './kube/client.ts';
import { Informer } from './kube/informer.ts';
import { projectionFor, type Projected } from './kube/projections.ts';
import { RESOURCES, type ResourceName } from './kube/resources.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { imageRequests, type ImageRequest } from './images.ts';
import { WorkQueue } from './queue.ts';
import { rfc3339 } from './time.ts';

export const FIELD_MANAGER = 'kopek';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'kopek' };
const CONTROLLER = 'workloadrecommendation';
/** How many workloads a SavingsPolicy's status lists by savings. */
const TOP_WORKLOADS = 20;

/** Looks up the platforms of images (the registry client, in the operator). */
export interface ImagePlatformSource {
  resolve(requests: readonly ImageRequest[]): Promise<Record<string, ImagePlatformsFact>>;
}

export interface ControllerOptions {
  client: KubeClient;
  log: Logger;
  metrics: Metrics;
  prices: PriceBook;
  workers?: number;
  imagePlatforms?: ImagePlatformSource;
  /** Least time between two rebuilds of the facts, to batch bursts of events. */
  minRebuildIntervalMs?: number;
  /** Rebuild everything this often even without events (moved tags, expired prices). */
  resyncIntervalMs?: number;
  /** When an image lookup failed, rebuild again after this long to retry it. */
  imageRetryIntervalMs?: number;
  /** How often to look for Argo Rollouts when it is not installed. */
  discoveryIntervalMs?: number;
  informer?: {
    idleTimeoutMs?: number;
    minWatchTimeoutSeconds?: number;
    relistIntervalMs?: number;
    backoffMaxMs?: number;
  };
  now?: () => Date;
}

interface WorkloadResult {
  namespace: string;
  kind: string;
  name: string;
  policy: string | undefined;
  status: WorkloadRecommendationStatus;
}

/** Queue keys: a workload (`wl/<namespace>/<kind>/<name>`) or a policy's status (`policy/<name>`). */
const workloadKey = (namespace: string, kind: string, name: string): string =>
  `wl/${namespace}/${kind}/${name}`;
const policyKey = (name: string): string => `policy/${name}`;

/**
 * Keeps one WorkloadRecommendation per workload. Informers keep slim copies of the cluster;
 * any change marks the facts stale; a rebuild (batched, at most one per interval) recomputes
 * every workload's facts and queues exactly the workloads whose facts changed. A reconcile
 * recommends for one workload from the latest facts and server-side-applies the result only
 * when it differs from what is stored: at steady state kopek writes nothing.
 */
export class RecommendationController {
  private readonly options: ControllerOptions;
  private readonly informers = new Map<ResourceName, Informer<Projected>>();
  private queue: WorkQueue;
  private facts = new Map<string, WorkloadFacts>();
  private factsJson = new Map<string, string>();
  private readonly results = new Map<string, WorkloadResult>();
  private rebuildTimer: NodeJS.Timeout | undefined;
  private imageRetryTimer: NodeJS.Timeout | undefined;
  private rolloutsDiscovery: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;
  private rebuildPending = false;
  private lastRebuildAt = 0;
  private leading = false;
  private kubernetesMinor: number | undefined;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.queue = new WorkQueue({ name: CONTROLLER, metrics: options.metrics.queue });
  }

  /** Starts every informer (Argo Rollouts only if served). Caches fill on standby replicas too. */
  async start(): Promise<void> {
    const { client, log } = this.options;
    const version = await client.serverVersion().catch(() => undefined);
    const minor = Number.parseInt(version?.minor ?? '', 10);
    if (Number.isFinite(minor)) this.kubernetesMinor = minor;
    for (const name of Object.keys(RESOURCES) as ResourceName[]) {
      if (name === 'rollouts' && !(await this.servesRollouts())) {
        log.info('Argo Rollouts is not installed; watching for it to appear');
        this.rolloutsDiscovery = setInterval(() => {
          void this.discoverRollouts();
        }, this.options.discoveryIntervalMs ?? 60_000);
        this.rolloutsDiscovery.unref();
        continue;
      }
      this.startInformer(name);
    }
  }

  private servesRollouts(): Promise<boolean> {
    return this.options.client.serves(RESOURCES.rollouts).catch(() => false);
  }

  /** Argo Rollouts installed after kopek started: watch Rollouts from now on. */
  private async discoverRollouts(): Promise<void> {
    if (this.informers.has('rollouts') || !(await this.servesRollouts())) return;
    clearInterval(this.rolloutsDiscovery);
    this.options.log.info('Argo Rollouts appeared; watching rollouts');
    this.startInformer('rollouts');
  }

  private startInformer(name: ResourceName): void {
    const { client, log, metrics } = this.options;
    const type = RESOURCES[name];
    const informer = new Informer<Projected>({
      type,
      client,
      project: projectionFor(type),
      log,
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
      onChange: (_change, object) => {
        this.onChange(name, object);
      },
    });
    this.informers.set(name, informer);
    informer.start();
  }

  get synced(): boolean {
    return [...this.informers.values()].every((informer) => informer.synced);
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.informers.values()].map((informer) => informer.waitForSync()));
  }

  /** Seconds since each cache last heard from the API server, and its size (for metrics). */
  cacheStats(): { resource: string; objects: number; lastEventAgeSeconds: number }[] {
    const now = Date.now();
    return [...this.informers.values()].map((informer) => ({
      resource: informer.resource,
      objects: informer.size,
      lastEventAgeSeconds: informer.lastEventAt === 0 ? 0 : (now - informer.lastEventAt) / 1000,
    }));
  }

  /**
   * Runs the workers until `signal` aborts; only the leader does this. It can run again after
   * a lost lease: with a fresh queue, and every workload compared anew with what is stored.
   */
  async run(signal: AbortSignal): Promise<void> {
    const workers = this.options.workers ?? 4;
    this.queue = new WorkQueue({ name: CONTROLLER, metrics: this.options.metrics.queue });
    this.factsJson = new Map();
    this.leading = true;
    this.options.metrics.maxConcurrentReconciles.set({ controller: CONTROLLER }, workers);
    await this.waitForSync();
    this.scheduleRebuild();
    const resync = setInterval(() => {
      this.scheduleRebuild();
    }, this.options.resyncIntervalMs ?? 600_000);
    signal.addEventListener(
      'abort',
      () => {
        this.queue.shutDown();
      },
      { once: true },
    );
    await Promise.all(Array.from({ length: workers }, () => this.worker()));
    clearInterval(resync);
    clearTimeout(this.imageRetryTimer);
    this.imageRetryTimer = undefined;
    this.leading = false;
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    clearTimeout(this.rebuildTimer);
    clearTimeout(this.imageRetryTimer);
    clearInterval(this.rolloutsDiscovery);
    await Promise.all([...this.informers.values()].map((informer) => informer.stop()));
    await this.rebuilding;
  }

  /** Sets the cluster-wide gauges from the latest results (called before each scrape). */
  updateMetrics(): void {
    const { metrics } = this.options;
    for (const stat of this.cacheStats()) {
      metrics.cacheObjects.set({ resource: stat.resource }, stat.objects);
      metrics.cacheLastEventAge.set({ resource: stat.resource }, stat.lastEventAgeSeconds);
    }
    const { prices } = this.options;
    metrics.pricesAge.reset();
    metrics.pricesAge.set(
      { source: prices.source === 'Live' ? 'live' : 'snapshot' },
      Math.max(0, (Date.now() - Date.parse(prices.asOf)) / 1000),
    );
    const { unfinishedWork, longestRunning } = metrics.queue;
    const work = this.queue.unfinishedWork();
    unfinishedWork.set({ name: CONTROLLER }, work.totalSeconds);
    longestRunning.set({ name: CONTROLLER }, work.longestSeconds);
    metrics.activeWorkers.set({ controller: CONTROLLER }, this.queue.active);

    let cost = 0;
    const savings = { spot: 0, arm64: 0, cross_zone: 0, combined: 0 };
    const verdicts = new Map<string, number>();
    for (const result of this.results.values()) {
      const { status } = result;
      cost += Number(status.monthlyCostUSD ?? 0);
      savings.combined += Number(status.potentialMonthlySavingsUSD ?? 0);
      for (const [optimization, part] of [
        ['spot', status.spot],
        ['arm64', status.arm64],
        ['cross_zone', status.crossZone],
      ] as const) {
        if (!part) continue;
        savings[optimization] += Number(part.monthlySavingsUSD);
        const key = `${optimization}\u0000${part.verdict}`;
        verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
      }
    }
    metrics.monthlyCost.set(cost);
    for (const [optimization, value] of Object.entries(savings))
      metrics.potentialSavings.set({ optimization }, value);
    metrics.recommendations.reset();
    for (const [key, count] of verdicts) {
      const [optimization = '', verdict = ''] = key.split('\u0000');
      metrics.recommendations.set({ optimization, verdict }, count);
    }
    metrics.nodes.reset();
    const nodes = new Map<string, number>();
    for (const node of this.informers.get('nodes')?.list() ?? []) {
      const labels = node.metadata.labels ?? {};
      const spot =
        labels['karpenter.sh/capacity-type'] === 'spot' ||
        labels['eks.amazonaws.com/capacityType'] === 'SPOT';
      const key = `${spot ? 'spot' : 'on-demand'}\u0000${labels['kubernetes.io/arch'] ?? 'unknown'}`;
      nodes.set(key, (nodes.get(key) ?? 0) + 1);
    }
    for (const [key, count] of nodes) {
      const [capacityType = '', arch = ''] = key.split('\u0000');
      metrics.nodes.set({ capacity_type: capacityType, arch }, count);
    }
  }

  private onChange(resource: ResourceName, object: Projected): void {
    if (resource === 'workloadrecommendations') {
      // Someone changed or deleted a recommendation: check it against what it should be.
      const target = (object.spec as { targetRef?: { kind?: string; name?: string } } | undefined)
        ?.targetRef;
      if (target?.kind && target.name && object.metadata.namespace)
        this.queue.add(workloadKey(object.metadata.namespace, target.kind, target.name));
      return;
    }
    if (resource === 'savingspolicies') this.queue.add(policyKey(object.metadata.name));
    this.scheduleRebuild();
  }

  private scheduleRebuild(): void {
    if (!this.leading) return;
    if (this.rebuilding) {
      this.rebuildPending = true;
      return;
    }
    if (this.rebuildTimer) return;
    const minInterval = this.options.minRebuildIntervalMs ?? 1000;
    // A short debounce batches the burst of events one change causes (Deployment → ReplicaSet → Pods).
    const delay = Math.max(100, this.lastRebuildAt + minInterval - Date.now());
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      this.rebuilding = this.rebuild().finally(() => {
        this.rebuilding = undefined;
        if (this.rebuildPending) {
          this.rebuildPending = false;
          this.scheduleRebuild();
        }
      });
    }, delay);
    this.rebuildTimer.unref();
  }

  /** Recomputes every workload's facts and queues those that changed, appeared or went. */
  private async rebuild(): Promise<void> {
    this.lastRebuildAt = Date.now();
    const objects: Projected[] = [];
    for (const [name, informer] of this.informers) {
      if (name !== 'workloadrecommendations') objects.push(...informer.list());
    }
    let imagePlatforms: Record<string, ImagePlatformsFact> = {};
    if (this.options.imagePlatforms) {
      try {
        imagePlatforms = await this.options.imagePlatforms.resolve(imageRequests(objects));
      } catch (error) {
        this.options.metrics.sourceErrors.inc({ source: 'registry' });
        this.options.log.warn('could not look up image platforms', { error: errorMessage(error) });
      }
    }
    const built = factsFromObjects(objects, {
      imagePlatforms,
      ...(this.kubernetesMinor !== undefined ? { kubernetesMinor: this.kubernetesMinor } : {}),
    });
    const facts = new Map<string, WorkloadFacts>();
    const factsJson = new Map<string, string>();
    for (const workload of built.facts) {
      const key = workloadKey(workload.namespace, workload.kind, workload.name);
      const json = canonicalJson(workload);
      facts.set(key, workload);
      factsJson.set(key, json);
      if (this.factsJson.get(key) !== json) this.queue.add(key);
    }
    for (const key of this.factsJson.keys()) if (!facts.has(key)) this.queue.add(key);
    // Recommendations whose workload kopek no longer analyses (ignored, system namespace, gone).
    for (const wrec of this.informers.get('workloadrecommendations')?.list() ?? []) {
      const target = (wrec.spec as { targetRef?: { kind?: string; name?: string } } | undefined)
        ?.targetRef;
      if (!target?.kind || !target.name || !wrec.metadata.namespace) continue;
      const key = workloadKey(wrec.metadata.namespace, target.kind, target.name);
      if (!facts.has(key)) this.queue.add(key);
    }
    this.facts = facts;
    this.factsJson = factsJson;
    // A registry that failed (down, throttling) is asked again soon, so verdicts recover.
    const lookupFailed = Object.values(imagePlatforms).some((fact) => 'error' in fact);
    if (lookupFailed && !this.imageRetryTimer) {
      this.imageRetryTimer = setTimeout(() => {
        this.imageRetryTimer = undefined;
        this.scheduleRebuild();
      }, this.options.imageRetryIntervalMs ?? 30_000);
      this.imageRetryTimer.unref();
    }
    for (const warning of built.warnings) this.options.log.debug('facts', { warning });
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const started = performance.now();
      try {
        if (key.startsWith('policy/')) await this.reconcilePolicy(key.slice('policy/'.length));
        else await this.reconcileWorkload(key);
        this.queue.forget(key);
        this.options.metrics.reconcileTotal.inc({ controller: CONTROLLER, result: 'success' });
      } catch (error) {
        this.options.metrics.reconcileTotal.inc({ controller: CONTROLLER, result: 'error' });
        this.options.metrics.reconcileErrors.inc({ controller: CONTROLLER });
        const conflict = error instanceof KubeApiError && error.status === 409;
        if (!conflict) this.options.metrics.sourceErrors.inc({ source: 'kube' });
        this.options.log[conflict ? 'debug' : 'warn']('reconcile failed; retrying', {
          key,
          error: errorMessage(error),
          retries: this.queue.retries(key),
        });
        this.queue.addRateLimited(key);
      } finally {
        this.options.metrics.reconcileTime.observe(
          { controller: CONTROLLER },
          (performance.now() - started) / 1000,
        );
        this.queue.done(key);
      }
    }
  }

  /** One workload: recommend from the latest facts; write only what differs from the stored object. */
  private async reconcileWorkload(key: string): Promise<void> {
    const [, namespace = '', kind = '', name = ''] = key.split('/');
    const wrecName = recommendationName(kind, name);
    const wrecs = this.informers.get('workloadrecommendations');
    const existing = wrecs?.get(`${namespace}/${wrecName}`) as unknown as
      WorkloadRecommendation | undefined;
    const facts = this.facts.get(key);
    const previous = this.results.get(key);

    if (!facts) {
      this.forgetWorkload(key, previous);
      if (existing && existing.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kopek') {
        await this.options.client.delete(RESOURCES.workloadrecommendations, wrecName, namespace);
        this.options.log.info(
          'deleted recommendation: its workload is gone or no longer analysed',
          { namespace, name: wrecName },
        );
      }
      return;
    }

    const status = recommend(facts, this.options.prices);
    const now = this.options.now?.() ?? new Date();
    const desired = toWorkloadRecommendation(facts, status, rfc3339(now));
    this.recordResult(key, facts, status, previous);

    let generation = existing?.metadata.generation;
    if (!existing || canonicalJson(ownedMain(existing)) !== canonicalJson(ownedMain(desired))) {
      const applied = await this.options.client.apply<WorkloadRecommendation>(
        RESOURCES.workloadrecommendations,
        mainPart(desired),
        { fieldManager: FIELD_MANAGER, force: true },
      );
      generation = applied.metadata.generation;
      this.options.log.info(existing ? 'updated recommendation' : 'created recommendation', {
        namespace,
        name: wrecName,
      });
    }
    const desiredStatus = withStableTransitions(desired.status ?? {}, existing?.status, generation);
    if (
      canonicalJson(comparableStatus(existing?.status)) !==
      canonicalJson(comparableStatus(desiredStatus))
    ) {
      await this.options.client.apply(
        RESOURCES.workloadrecommendations,
        {
          apiVersion: desired.apiVersion,
          kind: desired.kind,
          metadata: { name: wrecName, namespace },
          status: desiredStatus,
        },
        { fieldManager: FIELD_MANAGER, subresource: 'status', force: true },
      );
      this.options.log.debug('wrote recommendation status', { namespace, name: wrecName });
    }
  }

  private recordResult(
    key: string,
    facts: WorkloadFacts,
    status: WorkloadRecommendationStatus,
    previous: WorkloadResult | undefined,
  ): void {
    const result: WorkloadResult = {
      namespace: facts.namespace,
      kind: facts.kind,
      name: facts.name,
      policy: facts.policy.name,
      status,
    };
    this.results.set(key, result);
    const labels = { namespace: facts.namespace, kind: facts.kind, name: facts.name };
    const { metrics } = this.options;
    metrics.workloadMonthlyCost.set(labels, Number(status.monthlyCostUSD ?? 0));
    metrics.workloadPotentialSavings.set(
      { ...labels, optimization: 'combined' },
      Number(status.potentialMonthlySavingsUSD ?? 0),
    );
    metrics.workloadPotentialSavings.set(
      { ...labels, optimization: 'spot' },
      Number(status.spot?.monthlySavingsUSD ?? 0),
    );
    metrics.workloadPotentialSavings.set(
      { ...labels, optimization: 'arm64' },
      Number(status.arm64?.monthlySavingsUSD ?? 0),
    );
    metrics.workloadPotentialSavings.set(
      { ...labels, optimization: 'cross_zone' },
      Number(status.crossZone?.monthlySavingsUSD ?? 0),
    );
    metrics.workloadCrossZoneCost.set(labels, Number(status.crossZone?.monthlyCostUSD ?? 0));
    const summaryChanged =
      !previous ||
      previous.policy !== result.policy ||
      previous.status.monthlyCostUSD !== status.monthlyCostUSD ||
      previous.status.potentialMonthlySavingsUSD !== status.potentialMonthlySavingsUSD;
    if (summaryChanged) {
      if (previous?.policy) this.queue.add(policyKey(previous.policy));
      if (result.policy) this.queue.add(policyKey(result.policy));
    }
  }

  private forgetWorkload(key: string, previous: WorkloadResult | undefined): void {
    if (!previous) return;
    this.results.delete(key);
    const labels = { namespace: previous.namespace, kind: previous.kind, name: previous.name };
    const { metrics } = this.options;
    metrics.workloadMonthlyCost.remove(labels);
    metrics.workloadCrossZoneCost.remove(labels);
    for (const optimization of ['combined', 'spot', 'arm64', 'cross_zone'])
      metrics.workloadPotentialSavings.remove({ ...labels, optimization });
    if (previous.policy) this.queue.add(policyKey(previous.policy));
  }

  /** A SavingsPolicy's status: the workloads it governs and their totals. */
  private async reconcilePolicy(name: string): Promise<void> {
    const policy = this.informers.get('savingspolicies')?.get(name) as unknown as
      SavingsPolicy | undefined;
    if (!policy) return;
    const matched = [...this.results.values()].filter((result) => result.policy === name);
    const money = (pick: (result: WorkloadResult) => string | undefined): number =>
      matched.reduce((sum, result) => sum + Number(pick(result) ?? 0), 0);
    const top = [...matched]
      .sort(
        (a, b) =>
          Number(b.status.potentialMonthlySavingsUSD ?? 0) -
            Number(a.status.potentialMonthlySavingsUSD ?? 0) ||
          `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
      )
      .slice(0, TOP_WORKLOADS)
      .map((result) => ({
        namespace: result.namespace,
        kind: result.kind,
        name: result.name,
        potentialMonthlySavingsUSD: result.status.potentialMonthlySavingsUSD ?? '0',
      }));
    const generation = (policy.metadata as { generation?: number }).generation;
    const ready = {
      type: 'Ready',
      status: 'True' as const,
      reason: 'Analysed',
      message: `${matched.length} workload${matched.length === 1 ? '' : 's'} analysed under this policy.`,
    };
    const status = withStableTransitions(
      {
        matchedWorkloads: matched.length,
        monthlyCostUSD: formatUSD(money((result) => result.status.monthlyCostUSD)),
        potentialMonthlySavingsUSD: formatUSD(
          money((result) => result.status.potentialMonthlySavingsUSD),
        ),
        topWorkloads: top,
        conditions: [{ ...ready, lastTransitionTime: rfc3339(this.options.now?.() ?? new Date()) }],
      },
      policy.status,
      generation,
    );
    if (canonicalJson(comparableStatus(policy.status)) === canonicalJson(comparableStatus(status)))
      return;
    await this.options.client.apply(
      RESOURCES.savingspolicies,
      { apiVersion: policy.apiVersion, kind: policy.kind, metadata: { name }, status },
      { fieldManager: FIELD_MANAGER, subresource: 'status', force: true },
    );
  }
}

/** The object without status: what the main server-side apply sets. */
function mainPart(wrec: WorkloadRecommendation): Omit<WorkloadRecommendation, 'status'> {
  const { status: _, ...main } = wrec;
  return main;
}

/** The fields of the main object kopek owns, for comparison with what is stored. */
function ownedMain(wrec: WorkloadRecommendation): unknown {
  return {
    labels: Object.fromEntries(
      Object.entries(wrec.metadata.labels ?? {}).filter(([key]) => key in MANAGED_BY),
    ),
    ownerReferences: (wrec.metadata.ownerReferences ?? []).map(
      ({ apiVersion, kind, name, uid }) => ({ apiVersion, kind, name, uid }),
    ),
    targetRef: wrec.spec.targetRef,
  };
}

interface WithConditions {
  conditions?: {
    type: string;
    status: string;
    lastTransitionTime: string;
    observedGeneration?: number;
  }[];
  observedGeneration?: number;
}

/** Keeps a condition's lastTransitionTime while its status is unchanged; stamps observedGeneration. */
function withStableTransitions<T extends WithConditions>(
  status: T,
  stored: WithConditions | undefined,
  generation: number | undefined,
): T {
  const conditions = status.conditions?.map((condition) => {
    const before = stored?.conditions?.find((c) => c.type === condition.type);
    const lastTransitionTime =
      before?.status === condition.status
        ? before.lastTransitionTime
        : condition.lastTransitionTime;
    return {
      ...condition,
      lastTransitionTime,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  });
  return {
    ...status,
    ...(conditions ? { conditions } : {}),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** A status as kopek owns it: without what others write (applied), for change detection. */
function comparableStatus(status: object | undefined): unknown {
  if (!status) return {};
  const { applied: _, ...rest } = status as { applied?: unknown };
  return rest;
}
