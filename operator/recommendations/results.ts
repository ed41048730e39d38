import type { WorkloadRecommendationStatus } from '../../recommender/api/v1alpha1.ts';
import type { Metrics } from '../metrics.ts';
import { CrossZoneSeries } from '../traffic/series.ts';

/** The latest recommendation of one workload, as the policy status and the gauges read it. */
export interface WorkloadResult {
  namespace: string;
  kind: string;
  name: string;
  policy: string | undefined;
  status: WorkloadRecommendationStatus;
}

const OPTIMIZATIONS = ['combined', 'spot', 'arm64', 'cross_zone'] as const;

/**
 * The latest result per workload and its Prometheus series. A workload's series exist exactly
 * while it has a result: forgetting a workload removes them, so dashboards never show the money
 * of workloads that are gone.
 */
export class WorkloadResults {
  private readonly metrics: Metrics;
  private readonly results = new Map<string, WorkloadResult>();
  private readonly crossZone: CrossZoneSeries;

  constructor(metrics: Metrics) {
    this.metrics = metrics;
    this.crossZone = new CrossZoneSeries(metrics);
  }

  values(): IterableIterator<WorkloadResult> {
    return this.results.values();
  }

  get(key: string): WorkloadResult | undefined {
    return this.results.get(key);
  }

  /**
   * Records a workload's result and exports its series. Returns the policies whose totals
   * changed with it (the one it was under before, and the one now), to update their status.
   */
  set(key: string, result: WorkloadResult): string[] {
    const previous = this.results.get(key);
    this.results.set(key, result);
    const { status } = result;
    const labels = { namespace: result.namespace, kind: result.kind, name: result.name };
    const savings: Record<(typeof OPTIMIZATIONS)[number], string | undefined> = {
      combined: status.potentialMonthlySavingsUSD,
      spot: status.spot?.monthlySavingsUSD,
      arm64: status.arm64?.monthlySavingsUSD,
      cross_zone: status.crossZone?.monthlySavingsUSD,
    };
    this.metrics.workloadMonthlyCost.set(labels, Number(status.monthlyCostUSD ?? 0));
    for (const optimization of OPTIMIZATIONS)
      this.metrics.workloadPotentialSavings.set(
        { ...labels, optimization },
        Number(savings[optimization] ?? 0),
      );
    this.metrics.workloadCrossZoneCost.set(labels, Number(status.crossZone?.monthlyCostUSD ?? 0));
    this.crossZone.record(labels, status.crossZone);
    const summaryChanged =
      !previous ||
      previous.policy !== result.policy ||
      previous.status.monthlyCostUSD !== status.monthlyCostUSD ||
      previous.status.potentialMonthlySavingsUSD !== status.potentialMonthlySavingsUSD;
    if (!summaryChanged) return [];
    return [previous?.policy, result.policy].filter((policy) => policy !== undefined);
  }

  /** Forgets a workload and removes its series; returns the policy it counted under. */
  delete(key: string): string[] {
    const previous = this.results.get(key);
    if (!previous) return [];
    this.results.delete(key);
    const labels = { namespace: previous.namespace, kind: previous.kind, name: previous.name };
    this.metrics.workloadMonthlyCost.remove(labels);
    this.metrics.workloadCrossZoneCost.remove(labels);
    this.crossZone.forget(labels);
    for (const optimization of OPTIMIZATIONS)
      this.metrics.workloadPotentialSavings.remove({ ...labels, optimization });
    return previous.policy === undefined ? [] : [previous.policy];
  }
}
