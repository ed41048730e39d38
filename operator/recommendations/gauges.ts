import { LABEL_ARCH } from '../../recommender/facts.ts';
import { capacityTypeOf } from '../../recommender/objects/nodes.ts';
import { sumUSD } from '../../recommender/pricing.ts';
import type { ClusterCache } from '../cache.ts';
import type { Metrics } from '../metrics.ts';
import type { PriceSource } from '../prices.ts';
import type { StatusSummary, WorkloadResults } from './results.ts';

/**
 * Sets the cluster-wide gauges from the caches and the latest results: cache sizes and ages,
 * the age of the prices in use, total cost and savings, verdict counts and the node mix. Called
 * before each scrape, so they are never stale.
 */
export function updateClusterGauges(
  metrics: Metrics,
  sources: { cache: ClusterCache; results: WorkloadResults; prices: PriceSource; now: number },
): void {
  const { cache, results, prices, now } = sources;
  for (const stat of cache.stats()) {
    metrics.cacheObjects.set({ resource: stat.resource }, stat.objects);
    metrics.cacheLastEventAge.set({ resource: stat.resource }, stat.lastEventAgeSeconds);
  }
  const pricesAge = prices.age(now);
  metrics.pricesAge.reset();
  metrics.pricesAge.set({ source: pricesAge.source }, pricesAge.seconds);

  const statuses = [...results.values()].map((result) => result.status);
  const total = (pick: (status: StatusSummary) => string | undefined): number =>
    Number(sumUSD(statuses.map(pick)));
  metrics.monthlyCost.set(total((status) => status.monthlyCostUSD));
  const savings = {
    combined: total((status) => status.potentialMonthlySavingsUSD),
    spot: total((status) => status.spot?.monthlySavingsUSD),
    arm64: total((status) => status.arm64?.monthlySavingsUSD),
    cross_zone: total((status) => status.crossZone?.monthlySavingsUSD),
  };
  for (const [optimization, value] of Object.entries(savings))
    metrics.potentialSavings.set({ optimization }, value);
  const verdicts = new Map<string, number>();
  for (const status of statuses) {
    for (const [optimization, part] of [
      ['spot', status.spot],
      ['arm64', status.arm64],
      ['cross_zone', status.crossZone],
    ] as const) {
      if (!part) continue;
      const key = `${optimization}\u0000${part.verdict}`;
      verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
    }
  }
  metrics.recommendations.reset();
  for (const [key, count] of verdicts) {
    const [optimization = '', verdict = ''] = key.split('\u0000');
    metrics.recommendations.set({ optimization, verdict }, count);
  }

  metrics.nodes.reset();
  const nodes = new Map<string, number>();
  for (const node of cache.list('nodes')) {
    const labels = node.metadata.labels ?? {};
    const capacity = capacityTypeOf(labels) === 'spot' ? 'spot' : 'on-demand';
    const key = `${capacity}\u0000${labels[LABEL_ARCH] ?? 'unknown'}`;
    nodes.set(key, (nodes.get(key) ?? 0) + 1);
  }
  for (const [key, count] of nodes) {
    const [capacityType = '', arch = ''] = key.split('\u0000');
    metrics.nodes.set({ capacity_type: capacityType, arch }, count);
  }
}
