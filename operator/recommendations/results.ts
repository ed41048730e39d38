import type {
  CrossZoneResult,
  OptimizationResult,
  WorkloadRecommendationStatus,
} from '../../recommender/api/v1alpha1.ts';
import { BYTES_PER_GB } from '../../recommender/cross-zone.ts';
import type { GaugeSample } from '../exposition.ts';
import type { Metrics } from '../metrics.ts';

/** The latest recommendation of one workload, as it is computed. */
export interface WorkloadResult {
  namespace: string;
  kind: string;
  name: string;
  policy: string | undefined;
  status: WorkloadRecommendationStatus;
}

type OptimizationSummary = Pick<OptimizationResult, 'verdict' | 'monthlySavingsUSD'>;

/** Cross-zone: also the money, the bytes and the largest measured edges its series show. */
type CrossZoneSummary = OptimizationSummary &
  Pick<CrossZoneResult, 'monthlyCostUSD' | 'monthlyCrossZoneGB' | 'edges'>;

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
  crossZone?: CrossZoneSummary;
}

/** A workload's latest result as kept: its summary only. */
export interface KeptResult extends Omit<WorkloadResult, 'status'> {
  status: StatusSummary;
}

function summary(status: WorkloadRecommendationStatus): StatusSummary {
  const kept: StatusSummary = {};
  if (status.monthlyCostUSD !== undefined) kept.monthlyCostUSD = status.monthlyCostUSD;
  if (status.potentialMonthlySavingsUSD !== undefined)
    kept.potentialMonthlySavingsUSD = status.potentialMonthlySavingsUSD;
  for (const optimization of ['spot', 'arm64'] as const) {
    const result = status[optimization];
    if (result)
      kept[optimization] = { verdict: result.verdict, monthlySavingsUSD: result.monthlySavingsUSD };
  }
  const crossZone = status.crossZone;
  if (crossZone) {
    const { verdict, monthlySavingsUSD, monthlyCostUSD, monthlyCrossZoneGB, edges } = crossZone;
    const keptCrossZone: CrossZoneSummary = { verdict, monthlySavingsUSD };
    if (monthlyCostUSD !== undefined) keptCrossZone.monthlyCostUSD = monthlyCostUSD;
    if (monthlyCrossZoneGB !== undefined) keptCrossZone.monthlyCrossZoneGB = monthlyCrossZoneGB;
    if (edges !== undefined && edges.length > 0) keptCrossZone.edges = edges;
    kept.crossZone = keptCrossZone;
  }
  return kept;
}

/**
 * The latest result per workload, and the per-workload Prometheus series computed from them at
 * each scrape: a workload's series exist exactly while it has a result, so dashboards never show
 * the money of workloads that are gone.
 */
export class WorkloadResults {
  private readonly results = new Map<string, KeptResult>();

  constructor(metrics: Metrics) {
    const usd = (value: string | undefined): number => Number(value ?? 0);
    metrics.workloadMonthlyCost.samples = () =>
      this.samples((status) => [{ value: usd(status.monthlyCostUSD) }]);
    metrics.workloadPotentialSavings.samples = () =>
      this.samples((status) =>
        (
          [
            ['combined', status.potentialMonthlySavingsUSD],
            ['spot', status.spot?.monthlySavingsUSD],
            ['arm64', status.arm64?.monthlySavingsUSD],
            ['cross_zone', status.crossZone?.monthlySavingsUSD],
          ] as const
        ).map(([optimization, savings]) => ({ labels: { optimization }, value: usd(savings) })),
      );
    metrics.workloadCrossZoneCost.samples = () =>
      this.samples((status) => [{ value: usd(status.crossZone?.monthlyCostUSD) }]);
    metrics.workloadCrossZoneBytes.samples = () =>
      this.samples((status) => {
        const gb = status.crossZone?.monthlyCrossZoneGB;
        return gb === undefined ? [] : [{ value: Number(gb) * BYTES_PER_GB }];
      });
    const edges = (value: (edge: NonNullable<CrossZoneSummary['edges']>[number]) => number) => () =>
      this.samples((status) =>
        (status.crossZone?.edges ?? []).map((edge) => ({
          labels: {
            peer_namespace: edge.peer.namespace ?? '',
            peer_kind: edge.peer.kind ?? '',
            peer_name: edge.peer.name,
          },
          value: value(edge),
        })),
      );
    metrics.workloadCrossZoneEdgeBytes.samples = edges(
      (edge) => Number(edge.monthlyCrossZoneGB) * BYTES_PER_GB,
    );
    metrics.workloadCrossZoneEdgeCost.samples = edges((edge) => Number(edge.monthlyCostUSD));
  }

  values(): IterableIterator<KeptResult> {
    return this.results.values();
  }

  get(key: string): KeptResult | undefined {
    return this.results.get(key);
  }

  /**
   * Records a workload's result. Returns the policies whose totals changed with it (the one it
   * was under before, and the one now), to update their status.
   */
  set(key: string, result: WorkloadResult): string[] {
    const previous = this.results.get(key);
    const { status } = result;
    this.results.set(key, { ...result, status: summary(status) });
    const summaryChanged =
      !previous ||
      previous.policy !== result.policy ||
      previous.status.monthlyCostUSD !== status.monthlyCostUSD ||
      previous.status.potentialMonthlySavingsUSD !== status.potentialMonthlySavingsUSD;
    if (!summaryChanged) return [];
    return [previous?.policy, result.policy].filter((policy) => policy !== undefined);
  }

  /** Forgets a workload (and so its series); returns the policy it counted under. */
  delete(key: string): string[] {
    const previous = this.results.get(key);
    if (!previous) return [];
    this.results.delete(key);
    return previous.policy === undefined ? [] : [previous.policy];
  }

  /**
   * One gauge's series: each result's, labelled with its workload and `series`' own labels. The
   * list of results is copied when this is called, as a scrape begins (expositionChunks): the
   * series are made over several turns of the event loop while results change, and a scrape must
   * show every gauge as of one moment, each workload once.
   */
  private samples(
    series: (status: StatusSummary) => { labels?: Record<string, string>; value: number }[],
  ): Iterable<GaugeSample> {
    return samplesOf([...this.results.values()], series);
  }
}

function* samplesOf(
  results: readonly KeptResult[],
  series: (status: StatusSummary) => { labels?: Record<string, string>; value: number }[],
): Generator<GaugeSample> {
  for (const { namespace, kind, name, status } of results)
    for (const { labels, value } of series(status))
      yield {
        labels:
          labels === undefined ? { namespace, kind, name } : { namespace, kind, name, ...labels },
        value,
      };
}
