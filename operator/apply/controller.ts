import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import type { WorkloadFacts } from '../../recommender/facts.ts';
import type { PriceBook } from '../../recommender/pricing.ts';
import type { ClusterCache } from '../cache.ts';
import { systemClock, untilAborted, type Clock } from '../clock.ts';
import type { KubeApi } from '../kube/client.ts';
import type { Projected } from '../kube/projections.ts';
import type { ResourceName } from '../kube/resources.ts';
import type { Logger } from '../log.ts';
import { setPendingWork, type Metrics } from '../metrics.ts';
import { WorkQueue } from '../queue.ts';
import { parseKey, targetOf, workloadKey, type WorkloadRef } from '../recommendations/keys.ts';
import { runWorkers } from '../workers.ts';
import { EventRecorder } from './events.ts';
import { applyStep, involvedObjects } from './reconcile.ts';
import { UNKNOWN_VERSION, type ApplyContext } from './step.ts';

const CONTROLLER = 'apply';

const WORKLOAD_RESOURCES: ReadonlySet<ResourceName> = new Set([
  'deployments',
  'statefulsets',
  'daemonsets',
  'cronjobs',
  'rollouts',
]);

export interface ApplyControllerOptions {
  client: KubeApi;
  cache: ClusterCache;
  log: Logger;
  metrics: Metrics;
  /** The facts the recommendation controller built for a workload. */
  facts: (ref: WorkloadRef) => WorkloadFacts | undefined;
  prices: () => PriceBook;
  clock?: Clock;
  /** --enable-apply: without it nothing is changed, and approvals are answered ApplyDisabled. */
  applyEnabled: boolean;
  /** --dry-run: every change is sent as a server-side dry run and logged, nothing is stored. */
  dryRun?: boolean;
  /** --apply-settle-period: how long new pods must stay Ready (default 2 min). */
  settleMs?: number;
  /** Look at every recommendation this often even without events. */
  resyncIntervalMs?: number;
  workers?: number;
}

/** What kopek_pending_work reports for Apply mode, by kind (see its help). */
export type ApplyPendingWork = Record<
  'queued' | 'retrying' | 'waiting' | 'rolling_out' | 'reverting',
  number
>;

/**
 * Apply mode: changes approved workloads, watches their rollouts and reverts failed ones. A
 * sibling of the recommendation controller with its own queue, reading the same caches; only
 * the leader runs it. All it knows between steps is in status.applied (see reconcile.ts).
 */
export class ApplyController {
  private readonly options: ApplyControllerOptions;
  private readonly clock: Clock;
  private readonly events: EventRecorder;
  private queue: WorkQueue;
  private leading = false;
  /** Workloads whose change is rolling out now (this replica's view, for maxConcurrent). */
  private readonly active = new Set<string>();
  /** The last refusal reported per workload, so each is logged and evented once. */
  private readonly refusals = new Map<string, string>();
  /** The last dry-run change sent per workload (--dry-run), so each is sent and logged once. */
  private readonly dryRunsSent = new Map<string, string>();
  /** Per workload, the version of its recommendation the cache must reach (readRecommendation). */
  private readonly expectedVersions = new Map<string, string>();

  constructor(options: ApplyControllerOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.events = new EventRecorder({
      client: options.client,
      clock: this.clock,
      log: options.log,
    });
    this.queue = this.newQueue();
  }

  /** Told of every change in the caches; only what can move a change matters. */
  onChange(resource: ResourceName, object: Projected): void {
    if (!this.leading) return;
    if (resource === 'workloadrecommendations') {
      const target = targetOf(object);
      if (target) this.queue.add(workloadKey(target.namespace, target.kind, target.name));
    } else if (WORKLOAD_RESOURCES.has(resource) && object.metadata.namespace !== undefined) {
      this.queue.add(workloadKey(object.metadata.namespace, object.kind, object.metadata.name));
    }
  }

  /** Runs the workers until `signal` aborts; only the lease holder calls this. */
  async run(signal: AbortSignal): Promise<void> {
    const { cache, metrics, log } = this.options;
    this.queue = this.newQueue();
    this.active.clear();
    this.refusals.clear();
    this.dryRunsSent.clear();
    this.expectedVersions.clear();
    await untilAborted(cache.waitForSync(), signal);
    this.leading = true;
    // Changes a previous leader left in flight count against maxConcurrent at once. Their first
    // step reads the recommendation live: the cache can be behind that leader's last steps.
    for (const wrec of this.recommendations()) {
      const outcome = wrec.status?.applied?.outcome;
      const target = targetOf(wrec);
      if (!target || (outcome !== 'InProgress' && outcome !== 'RollingBack')) continue;
      const key = workloadKey(target.namespace, target.kind, target.name);
      this.active.add(key);
      this.expectedVersions.set(key, UNKNOWN_VERSION);
    }
    const resync = (): void => {
      for (const wrec of this.recommendations()) {
        const target = targetOf(wrec);
        if (target) this.queue.add(workloadKey(target.namespace, target.kind, target.name));
      }
    };
    resync();
    const timer = this.clock.setInterval(resync, this.options.resyncIntervalMs ?? 60_000);
    await runWorkers({
      controller: CONTROLLER,
      queue: this.queue,
      count: this.options.workers ?? 2,
      reconcile: (key) => this.reconcile(key),
      metrics,
      log,
      signal,
    });
    timer.cancel();
    this.leading = false;
  }

  stop(): void {
    this.queue.shutDown();
  }

  /** Sets the realized-savings and pending-work gauges (called before each scrape). */
  updateMetrics(): void {
    setPendingWork(this.options.metrics, CONTROLLER, this.pending());
    const gauge = this.options.metrics.workloadRealizedSavings;
    gauge.reset();
    for (const wrec of this.recommendations()) {
      const target = targetOf(wrec);
      const applied = wrec.status?.applied;
      if (!target || applied?.outcome !== 'Succeeded') continue;
      for (const s of applied.realizedSavings ?? [])
        gauge.set(
          {
            namespace: target.namespace,
            kind: target.kind,
            name: target.name,
            optimization: s.action,
          },
          Number(s.monthlySavingsUSD),
        );
    }
  }

  /**
   * The work Apply mode has yet to do (kopek_pending_work{controller="apply"}): all 0 when no
   * change is rolling out or being reverted and no approved change waits for its turn. A
   * standby does none of it.
   */
  pending(): ApplyPendingWork {
    const work: ApplyPendingWork = {
      queued: 0,
      retrying: 0,
      waiting: 0,
      rolling_out: 0,
      reverting: 0,
    };
    if (!this.leading) return work;
    work.queued = this.queue.length + this.queue.active;
    const inFlight = new Set<string>();
    for (const wrec of this.recommendations()) {
      const outcome = wrec.status?.applied?.outcome;
      if (outcome !== 'InProgress' && outcome !== 'RollingBack') continue;
      if (outcome === 'InProgress') work.rolling_out++;
      else work.reverting++;
      const target = targetOf(wrec);
      if (target) inFlight.add(workloadKey(target.namespace, target.kind, target.name));
    }
    // A key looked at again later: after a failure, or a step that asked (see StepResult).
    // Those of changes in flight are their rollouts being watched, counted above.
    for (const key of this.queue.delayedKeys()) {
      if (this.queue.retries(key) > 0) work.retrying++;
      else if (!inFlight.has(key)) work.waiting++;
    }
    return work;
  }

  private recommendations(): WorkloadRecommendation[] {
    return [
      ...this.options.cache.list('workloadrecommendations'),
    ] as unknown as WorkloadRecommendation[];
  }

  private newQueue(): WorkQueue {
    return new WorkQueue({
      name: CONTROLLER,
      metrics: this.options.metrics.queue,
      clock: this.clock,
    });
  }

  private async reconcile(key: string): Promise<void> {
    const parsed = parseKey(key);
    if (parsed.type !== 'workload') return;
    const ref = parsed.workload;
    const context: ApplyContext = {
      client: this.options.client,
      cache: this.options.cache,
      clock: this.clock,
      log: this.options.log,
      metrics: this.options.metrics,
      events: this.events,
      facts: this.options.facts,
      prices: this.options.prices,
      applyEnabled: this.options.applyEnabled,
      dryRun: this.options.dryRun ?? false,
      dryRunsSent: this.dryRunsSent,
      expectedVersions: this.expectedVersions,
      settleMs: this.options.settleMs ?? 120_000,
      inFlight: (self) => {
        const own = workloadKey(self.namespace, self.kind, self.name);
        return [...this.active].filter((k) => k !== own).length;
      },
      setActive: (of, active) => {
        const k = workloadKey(of.namespace, of.kind, of.name);
        if (active) this.active.add(k);
        else this.active.delete(k);
      },
    };
    const result = await applyStep(context, ref);
    if (result.refusal === undefined) this.refusals.delete(key);
    else if (this.refusals.get(key) !== result.refusal.code) {
      this.refusals.set(key, result.refusal.code);
      if (!result.refusal.quiet) {
        this.options.log.info('not applying', {
          ...ref,
          reason: result.refusal.code,
          message: result.refusal.message,
        });
        // NotApproved is about the recommendation (what a person approves); every other
        // refusal is also told on the workload, where `kubectl describe` shows it.
        const involved = involvedObjects(this.options.cache, ref);
        await this.events.record(
          result.refusal.code === 'NotApproved'
            ? involved.filter((o) => o.kind === 'WorkloadRecommendation')
            : involved,
          'Normal',
          result.refusal.code,
          result.refusal.message,
        );
      }
    }
    if (result.afterMs !== undefined) this.queue.addAfter(key, result.afterMs);
  }
}
