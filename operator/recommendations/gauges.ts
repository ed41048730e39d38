import {
  LABEL_ARCH,
  LABEL_EKS_CAPACITY,
  LABEL_KARPENTER_CAPACITY,
} from '../../recommender/facts.ts';
import type { PriceBook } from '../../recommender/pricing.ts';
import type { ClusterCache } from '../cache.ts';
import type { Metrics } from '../metrics.ts';
import type { WorkloadResults } from './results.ts';

/**
 * Sets the cluster-wide gauges from the caches and the latest results: cache sizes and ages,
 * the age of the prices in use, total cost and savings, verdict counts and the node mix. Called
 * before each scrape, so they are never stale.
 */
export function updateClusterGauges(
  metrics: Metrics,
  sources: { cache: ClusterCache; results: WorkloadResults; prices: PriceBook; now: number },
): void {
  const { cache, results, prices, now } = sources;
  for (const stat of cache.stats()) {
    metrics.cacheObjects.set({ resource: stat.resource }, stat.objects);
    metrics.cacheLastEventAge.set({ resource: stat.resource }, stat.lastEventAgeSeconds);
  }
  metrics.pricesAge.reset();
  metrics.pricesAge.set(
    { source: prices.source === 'Live' ? 'live' : 'snapshot' },
    Math.max(0, (now - Date.parse(prices.asOf)) / 1000),
  );

  let cost = 0;
  const savings = { spot: 0, arm64: 0, cross_zone: 0, combined: 0 };
  const verdicts = new Map<string, number>();
  for (const { status } of results.values()) {
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
  for (const node of cache.list('nodes')) {
    const labels = node.metadata.labels ?? {};
    const spot =
      labels[LABEL_KARPENTER_CAPACITY] === 'spot' || labels[LABEL_EKS_CAPACITY] === 'SPOT';
    const key = `${spot ? 'spot' : 'on-demand'}\u0000${labels[LABEL_ARCH] ?? 'unknown'}`;
    nodes.set(key, (nodes.get(key) ?? 0) + 1);
  }
  for (const [key, count] of nodes) {
    const [capacityType = '', arch = ''] = key.split('\u0000');
    metrics.nodes.set({ capacity_type: capacityType, arch }, count);
  }
}
