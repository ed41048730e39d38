import type { WorkloadFacts } from '../../recommender/facts.ts';
import { Batcher } from '../batcher.ts';
import type { ClusterCache } from '../cache.ts';
import { systemClock, untilAborted, type Clock, type Timer } from '../clock.ts';
import type { ImagePlatformSource } from '../images.ts';
import type { KubeApi } from '../kube/client.ts';
import type { Projected } from '../kube/projections.ts';
import type { ResourceName } from '../kube/resources.ts';
import { errorMessage, type Logger } from '../log.ts';
import { releaseFreedPages } from '../memory.ts';
import { setPendingWork, type Metrics } from '../metrics.ts';
import type { PriceSource } from '../prices.ts';
import { PRIORITIES, WorkQueue, type Priority } from '../queue.ts';
import type { TrafficSource } from '../traffic/telemetry.ts';
import { runWorkers } from '../workers.ts';
import { WorkloadFactsCache, type RebuildResult } from './facts.ts';
import { updateClusterGauges } from './gauges.ts';
import { parseKey, policyKey, targetOf, workloadKey, type WorkloadRef } from './keys.ts';
import { reconcilePolicy } from './policy.ts';
import { WorkloadResults } from './results.ts';
import { reconcileWorkload } from './workload.ts';

const CONTROLLER = 'workloadrecommendation';

export interface RecommendationControllerOptions {
  client: KubeApi;
  cache: ClusterCache;
  log: Logger;
  metrics: Metrics;
  /** The prices in force; read at every reconcile, so a refresh takes effect at once. */
  prices: PriceSource;
  clock?: Clock;
  workers?: number;
  imagePlatforms?: ImagePlatformSource;
  /** Measured cross-zone traffic, read while leading. */
  traffic?: TrafficSource;
  /** Least time between two rebuilds of the facts, to batch bursts of events. */
  minRebuildIntervalMs?: number;
  /** Rebuild everything this often even without events (moved tags, expired prices). */
  resyncIntervalMs?: number;
  /** When an image lookup failed, rebuild again after this long to retry it. */
  imageRetryIntervalMs?: number;
  /**
   * When pods elsewhere in the cluster moved the client pods per zone, bring the workloads with
   * a Service (their cross-zone client weights) up to date after this long, not at once.
   */
  clientRefreshIntervalMs?: number;
  /**
   * Returns the heap pages V8 freed to the system (releaseFreedPages): run once the work of a
   * full rebuild is done, at most every RELEASE_INTERVAL_MS.
   */
  releaseMemory?: () => void;
}

/**
 * Least time between two releases of V8's freed pages. A full rebuild (the cold start, each
 * resync) allocates most; while every build is full (traffic measured), one release in ten
 * minutes is enough.
 */
const RELEASE_INTERVAL_MS = 600_000;

/** What kopek_pending_work reports, by kind (see its help). */
export type PendingWork = Record<
  | 'queued'
  | 'retrying'
  | 'changes'
  | 'rebuilding'
  | 'image_retry'
  | 'client_refresh'
  | 'watch_retry',
  number
>;

/**
 * Keeps one WorkloadRecommendation per analysed workload and each SavingsPolicy's status.
 *
 * Each change in the caches marks the workloads it can affect (see dirty.ts); a batched rebuild
 * recomputes the facts of those only (of all at each resync) and queues exactly the workloads
 * whose facts changed, appeared or went. A reconcile
 * recommends for one workload from the latest facts and writes only what differs from what is
 * stored, so at steady state kopek writes nothing. Only the leader runs the workers.
 */
export class RecommendationController {
  private readonly options: RecommendationControllerOptions;
  private readonly clock: Clock;
  private readonly facts = new WorkloadFactsCache();
  private readonly results: WorkloadResults;
  private readonly rebuilds: Batcher;
  private queue: WorkQueue;
  private imageRetry: Timer | undefined;
  private clientRefresh: Timer | undefined;
  private leading = false;
  /**
   * Every cache has synced (and traffic was read) since this replica took the lease. Before
   * that, a rebuild would compute facts from part of the cluster (the pods not listed yet, say)
   * and the workers would write recommendations from them; the first rebuild after it reads all.
   */
  private synced = false;
  /** The facts were rebuilt since this replica took the lease. */
  private factsBuilt = false;
  /** When the first watch event that marked something since the last rebuild arrived. */
  private firstChangeAt: number | undefined;
  /**
   * Workloads a rebuild queued for a change of their own, with the time of that rebuild's first
   * watch event: what kopek_change_to_write_delay_seconds measures from.
   */
  private readonly changedSince = new Map<string, number>();
  /**
   * A full rebuild queued its work since the last release of V8's freed pages: release them once
   * that work is done. The pool of pages V8 keeps stays as large as the heap was at its largest,
   * and the cold start's is the largest (docs/decisions/0022).
   */
  private releaseWhenIdle = false;
  private lastReleaseAt: number | undefined;

  constructor(options: RecommendationControllerOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.results = new WorkloadResults(options.metrics);
    this.queue = this.newQueue();
    this.rebuilds = new Batcher(
      {
        clock: this.clock,
        debounceMs: 100,
        minIntervalMs: options.minRebuildIntervalMs ?? 1000,
        onError: (error) => {
          options.log.error('could not rebuild the facts', { error: errorMessage(error) });
        },
      },
      () => this.rebuild(),
    );
  }

  /** Told of every change in the caches (by ClusterCache's onChange). */
  onChange(resource: ResourceName, object: Projected, previous?: Projected): void {
    // A standby keeps its caches warm and nothing else: taking the lease rebuilds every
    // workload, so what it marked would never be read, and the marks would pile up with every
    // name the cluster ever had (new Deployments, ReplicaSets, nodes) until it led.
    if (!this.leading) return;
    if (resource === 'workloadrecommendations') {
      // Someone changed or deleted a recommendation: check it against what it should be. Not
      // before the first rebuild after taking the lease: without facts yet, every workload looks
      // gone, and the reconcile would delete its recommendation (a person's approval and
      // status.applied with it). That rebuild queues every workload anyway.
      if (!this.factsBuilt) return;
      // Mostly the echo of kopek's own write: checked after the workloads that changed.
      const target = targetOf(object);
      if (target) this.queue.add(workloadKey(target.namespace, target.kind, target.name), 'low');
      return;
    }
    // A policy's status sums its workloads' results: none before the first rebuild, which
    // queues every policy itself.
    if (resource === 'savingspolicies' && this.factsBuilt)
      this.queue.add(policyKey(object.metadata.name));
    if (!this.synced) return;
    if (this.facts.changes.markChanged(this.options.cache, resource, object, previous)) {
      this.firstChangeAt ??= this.clock.now();
      this.requestRebuild();
    }
  }

  /** Recomputes every workload's facts soon (a resync). */
  requestFullRebuild(): void {
    this.facts.changes.markAll();
    this.requestRebuild();
  }

  /** The latest facts of one workload (Apply mode reads them). */
  factsOf(ref: WorkloadRef): WorkloadFacts | undefined {
    return this.facts.get(workloadKey(ref.namespace, ref.kind, ref.name));
  }

  /** Rebuilds the facts of the workloads that changes marked, soon. */
  private requestRebuild(): void {
    if (this.leading) this.rebuilds.request();
  }

  /**
   * Reconciles every workload again from the facts it has, e.g. after the prices changed (the
   * facts did not, so a rebuild would queue none); only recommendations that differ are written.
   */
  recomputeAll(): void {
    if (!this.leading) return;
    for (const key of this.facts.keys()) this.queue.add(key, 'low');
  }

  /**
   * Runs the workers until `signal` aborts; only the leader does this. It can run again after
   * a lost lease: with a fresh queue, and every workload compared anew with what is stored.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { cache, metrics, log } = this.options;
    this.queue = this.newQueue();
    this.facts.forgetComparisons();
    this.factsBuilt = false;
    this.changedSince.clear();
    this.synced = false;
    this.leading = true;
    await untilAborted(cache.waitForSync(), signal);
    // Traffic is read by the leader only, before its first facts, so they start measured.
    if (!signal.aborted)
      await this.options.traffic?.start(() => {
        this.requestFullRebuild();
      });
    // A replica that lost the lease meanwhile builds nothing from caches that may still be listing.
    if (!signal.aborted) {
      this.synced = true;
      this.requestFullRebuild();
    }
    const resync = this.clock.setInterval(() => {
      this.requestFullRebuild();
    }, this.options.resyncIntervalMs ?? 600_000);
    await runWorkers({
      controller: CONTROLLER,
      queue: this.queue,
      count: this.options.workers ?? 4,
      reconcile: (key) => this.reconcile(key),
      metrics,
      log,
      signal,
      onIdle: () => {
        this.idle();
      },
    });
    resync.cancel();
    this.options.traffic?.stop();
    this.imageRetry?.cancel();
    this.imageRetry = undefined;
    this.clientRefresh?.cancel();
    this.clientRefresh = undefined;
    this.leading = false;
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    this.options.traffic?.stop();
    this.imageRetry?.cancel();
    this.clientRefresh?.cancel();
    await this.rebuilds.stop();
  }

  /** Sets the cluster-wide gauges (called before each scrape). */
  updateMetrics(): void {
    const { metrics, cache } = this.options;
    updateClusterGauges(metrics, {
      cache,
      results: this.results,
      prices: this.options.prices,
      now: this.clock.now(),
    });
    const work = this.queue.unfinishedWork();
    metrics.queue.unfinishedWork.set({ name: CONTROLLER }, work.totalSeconds);
    metrics.queue.longestRunning.set({ name: CONTROLLER }, work.longestSeconds);
    setPendingWork(metrics, CONTROLLER, this.pending());
  }

  /**
   * The work this controller has yet to do (kopek_pending_work). All 0 on the leader: its
   * recommendations are final until something changes; a test waits on that instead of a quiet
   * window as long as the longest timer.
   */
  pending(): PendingWork {
    return {
      queued: this.queue.length + this.queue.active,
      retrying: this.queue.delayedCount,
      changes: this.facts.changes.size,
      rebuilding: Number(this.rebuilds.busy),
      image_retry: Number(this.imageRetry !== undefined),
      client_refresh: Number(this.clientRefresh !== undefined),
      watch_retry: this.options.cache.retrying,
    };
  }

  /** The workers are done with every queued key (or a rebuild queued none). */
  private idle(): void {
    if (!this.releaseWhenIdle) return;
    const now = this.clock.now();
    if (this.lastReleaseAt !== undefined && now - this.lastReleaseAt < RELEASE_INTERVAL_MS) return;
    this.releaseWhenIdle = false;
    this.lastReleaseAt = now;
    const started = performance.now();
    try {
      (this.options.releaseMemory ?? releaseFreedPages)();
      this.options.log.debug('returned the heap pages V8 freed to the system', {
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      this.options.log.warn('could not return freed heap pages', { error: errorMessage(error) });
    }
  }

  private newQueue(): WorkQueue {
    return new WorkQueue({
      name: CONTROLLER,
      metrics: this.options.metrics.queue,
      clock: this.clock,
    });
  }

  private reconcile(key: string): Promise<void> {
    const parsed = parseKey(key);
    const { client, cache, log } = this.options;
    if (parsed.type === 'policy')
      return reconcilePolicy(
        { client, cache, results: this.results, clock: this.clock },
        parsed.name,
      );
    const since = this.changedSince.get(key);
    this.changedSince.delete(key);
    let observed = since === undefined;
    const decided = (outcome: 'write' | 'none'): void => {
      if (observed || since === undefined) return;
      observed = true;
      this.options.metrics.changeToWriteDelay.observe(
        { outcome },
        (this.clock.now() - since) / 1000,
      );
    };
    const restore = (): void => {
      // Stopped on stale facts or failed before deciding: the retry still measures from the change.
      if (!observed && since !== undefined && !this.changedSince.has(key))
        this.changedSince.set(key, since);
    };
    return reconcileWorkload(
      {
        client,
        cache,
        facts: this.facts,
        results: this.results,
        prices: this.options.prices,
        clock: this.clock,
        log,
        // Behind the workloads queued before it, so a burst of them writes the totals once.
        enqueuePolicy: (name) => {
          this.queue.add(policyKey(name), 'low');
        },
        decided,
      },
      parsed.workload,
    ).finally(restore);
  }

  /** Rebuilds the facts and queues the workloads whose facts changed, appeared or went. */
  private async rebuild(): Promise<void> {
    const { cache, imagePlatforms, metrics, log } = this.options;
    const started = performance.now();
    // The rebuild takes the marks at once: later events belong to the next one.
    const firstChangeAt = this.firstChangeAt;
    this.firstChangeAt = undefined;
    let rebuilt: RebuildResult;
    try {
      rebuilt = await this.facts.rebuild(cache, {
        imagePlatforms,
        traffic: this.options.traffic?.current(),
        metrics,
        log,
      });
    } catch (error) {
      // Its marks are kept (as "everything"), so is when they began (before any event since).
      if (firstChangeAt !== undefined) this.firstChangeAt = firstChangeAt;
      throw error;
    }
    const { changed, refreshed, edited, lookupFailed, clientsMoved, built, full } = rebuilt;
    const scope = full ? 'all' : 'marked';
    if (full) this.releaseWhenIdle = true;
    metrics.factsRebuildDuration.observe({ scope }, (performance.now() - started) / 1000);
    metrics.factsRebuildWorkloads.inc({ scope }, built);
    // A workload someone edited goes first; then those whose pods, ReplicaSets or Services
    // moved (a rollout's churn); last those a shared refresh (client weights, a resync, an
    // image's platforms) touched, which can be many. Added in that order too: an idle worker
    // takes a key as it is added, before any lane.
    const lane = (key: string): Priority =>
      edited.has(key) ? 'high' : refreshed.has(key) ? 'low' : 'normal';
    const byLane = (a: string, b: string): number =>
      PRIORITIES.indexOf(lane(a)) - PRIORITIES.indexOf(lane(b));
    for (const key of [...changed].sort(byLane)) {
      const own = !refreshed.has(key);
      this.queue.add(key, lane(key));
      // Measured from the earliest change still waiting for this workload's reconcile.
      if (own && firstChangeAt !== undefined && !this.changedSince.has(key))
        this.changedSince.set(key, firstChangeAt);
    }
    if (!this.factsBuilt)
      for (const policy of cache.list('savingspolicies'))
        this.queue.add(policyKey(policy.metadata.name), 'low');
    this.factsBuilt = true;
    // Recommendations whose workload kopek no longer analyses (ignored, system namespace, gone).
    for (const wrec of cache.list('workloadrecommendations')) {
      const target = targetOf(wrec);
      if (!target) continue;
      const key = workloadKey(target.namespace, target.kind, target.name);
      if (!this.facts.has(key)) this.queue.add(key);
    }
    // A rebuild that changed nothing (a quiet resync) leaves no work for the workers to finish.
    if (this.queue.length === 0 && this.queue.active === 0) this.idle();
    // Every pod event moves the client pods per zone a little: the workloads with a Service
    // follow in one batch a while later, so a stream of pod events does not rewrite them all
    // each second and the workloads that changed themselves are not queued behind them.
    if (clientsMoved && !this.clientRefresh) {
      this.clientRefresh = this.clock.setTimeout(() => {
        this.clientRefresh = undefined;
        this.facts.changes.markClients();
        this.requestRebuild();
      }, this.options.clientRefreshIntervalMs ?? 60_000);
    }
    // A registry that failed (down, throttling) is asked again soon, so verdicts recover.
    if (lookupFailed && !this.imageRetry) {
      this.imageRetry = this.clock.setTimeout(() => {
        this.imageRetry = undefined;
        this.facts.retryImageLookups();
        this.requestRebuild();
      }, this.options.imageRetryIntervalMs ?? 30_000);
    }
  }
}
