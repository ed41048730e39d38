import type {
  OptimizationResult,
  WorkloadRecommendationStatus,
} from '../../recommender/api/v1alpha1.ts';
import type { Metrics } from '../metrics.ts';
import { CrossZoneSeries } from '../traffic/series.ts';

/** The latest recommendation of one workload, as it is computed. */
export interface WorkloadResult {
  namespace: string;
  kind: string;
  name: string;
  policy: string | undefined;
  status: WorkloadRecommendationStatus;
}

type OptimizationSummary = Pick<OptimizationResult, 'verdict' | 'monthlySavingsUSD'>;

/**
 * What is kept of a status: the money and the verdicts that the policy status and the gauges
 * read. The whole status (reasons, images, placement, patch: several KiB a workload) is written
 * to the WorkloadRecommendation and not kept a second time.
 */
export interface StatusSummary {
  monthlyCostUSD?: string;
  potentialMonthlySavingsUSD?: string;
  spot?: OptimizationSummary;
  arm64?: OptimizationSummary;
  crossZone?: OptimizationSummary;
}

/** A workload's latest result as kept: its summary only. */
export interface KeptResult extends Omit<WorkloadResult, 'status'> {
  status: StatusSummary;
}

function summary(status: WorkloadRecommendationStatus): StatusSummary {
  const part = (result: OptimizationResult | undefined): OptimizationSummary | undefined =>
    result && { verdict: result.verdict, monthlySavingsUSD: result.monthlySavingsUSD };
  const kept: StatusSummary = {};
  if (status.monthlyCostUSD !== undefined) kept.monthlyCostUSD = status.monthlyCostUSD;
  if (status.potentialMonthlySavingsUSD !== undefined)
    kept.potentialMonthlySavingsUSD = status.potentialMonthlySavingsUSD;
  for (const optimization of ['spot', 'arm64', 'crossZone'] as const) {
    const result = part(status[optimization]);
    if (result) kept[optimization] = result;
  }
  return kept;
}

const OPTIMIZATIONS = ['combined', 'spot', 'arm64', 'cross_zone'] as const;

/**
 * The latest result per workload and its Prometheus series. A workload's series exist exactly
 * while it has a result: forgetting a workload removes them, so dashboards never show the money
 * of workloads that are gone.
 */
export class WorkloadResults {
  private readonly metrics: Metrics;
  private readonly results = new Map<string, KeptResult>();
  private readonly crossZone: CrossZoneSeries;

  constructor(metrics: Metrics) {
    this.metrics = metrics;
    this.crossZone = new CrossZoneSeries(metrics);
  }

  values(): IterableIterator<KeptResult> {
    return this.results.values();
  }

  get(key: string): KeptResult | undefined {
    return this.results.get(key);
  }

  /**
   * Records a workload's result and exports its series. Returns the policies whose totals
   * changed with it (the one it was under before, and the one now), to update their status.
   */
  set(key: string, result: WorkloadResult): string[] {
    const previous = this.results.get(key);
    const { status } = result;
    this.results.set(key, { ...result, status: summary(status) });
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
        // prom-client keeps this object for the series: a literal is one block, a spread two.
        { namespace: labels.namespace, kind: labels.kind, name: labels.name, optimization },
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
