import { describe, expect, it } from 'vitest';
import type { WorkloadRecommendationStatus } from '../../recommender/api/v1alpha1.ts';
import { createMetrics } from '../metrics.ts';
import { WorkloadResults } from './results.ts';
import { BYTES_PER_GB } from '../../recommender/cross-zone.ts';

const status: WorkloadRecommendationStatus = {
  observedGeneration: 3,
  policy: 'recommend-everywhere',
  monthlyCostUSD: '120.50',
  potentialMonthlySavingsUSD: '40.10',
  pricing: { source: 'Snapshot', region: 'us-east-1' },
  placement: { replicas: 3, zones: ['us-east-1a'], instanceTypes: ['m6i.large'] },
  spot: {
    verdict: 'Recommended',
    score: 80,
    monthlySavingsUSD: '30.00',
    reasons: [{ code: 'Stateless', message: 'No volumes.', effect: 'Raises' }],
  },
  arm64: {
    verdict: 'Possible',
    score: 50,
    monthlySavingsUSD: '10.10',
    images: [{ container: 'app', image: 'shop/web:1', platforms: ['linux/amd64', 'linux/arm64'] }],
  },
  crossZone: {
    verdict: 'NotRecommended',
    score: 10,
    monthlySavingsUSD: '0',
    monthlyCostUSD: '2.00',
    monthlyCrossZoneGB: '100',
    services: [{ name: 'web', crossZoneFraction: '0.5' }],
    edges: [
      {
        peer: { namespace: 'shop', kind: 'Deployment', name: 'api' },
        monthlyCrossZoneGB: '60',
        monthlyCostUSD: '1.20',
      },
    ],
  },
  suggestedPatch: { podTemplate: { spec: { nodeSelector: { 'kubernetes.io/arch': 'arm64' } } } },
  conditions: [
    {
      type: 'Ready',
      status: 'True',
      reason: 'Analysed',
      message: 'ok',
      lastTransitionTime: '2026-12-03T10:00:00Z',
    },
  ],
};

describe('WorkloadResults', () => {
  const web = { namespace: 'shop', kind: 'Deployment', name: 'web' };
  /** The registry's text for kopek's per-workload series, without HELP and TYPE lines. */
  const series = async (metrics: ReturnType<typeof createMetrics>): Promise<string[]> =>
    (await metrics.registry.metrics())
      .split('\n')
      .filter((line) => line.startsWith('kopek_workload_') && !line.includes('realized'));

  it('keeps only the money, verdicts and edges of a status, and computes its series at the scrape', async () => {
    const metrics = createMetrics();
    const results = new WorkloadResults(metrics);
    const key = 'wl/shop/Deployment/web';
    expect(results.set(key, { ...web, policy: 'recommend-everywhere', status })).toEqual([
      'recommend-everywhere',
    ]);
    expect(results.get(key)).toEqual({
      ...web,
      policy: 'recommend-everywhere',
      status: {
        monthlyCostUSD: '120.50',
        potentialMonthlySavingsUSD: '40.10',
        spot: { verdict: 'Recommended', monthlySavingsUSD: '30.00' },
        arm64: { verdict: 'Possible', monthlySavingsUSD: '10.10' },
        crossZone: {
          verdict: 'NotRecommended',
          monthlySavingsUSD: '0',
          monthlyCostUSD: '2.00',
          monthlyCrossZoneGB: '100',
          edges: status.crossZone?.edges,
        },
      },
    });
    const labels = 'namespace="shop",kind="Deployment",name="web"';
    const peer = 'peer_namespace="shop",peer_kind="Deployment",peer_name="api"';
    const money = [
      `kopek_workload_monthly_cost_usd{${labels}} 120.5`,
      `kopek_workload_potential_monthly_savings_usd{${labels},optimization="combined"} 40.1`,
      `kopek_workload_potential_monthly_savings_usd{${labels},optimization="spot"} 30`,
      `kopek_workload_potential_monthly_savings_usd{${labels},optimization="arm64"} 10.1`,
      `kopek_workload_potential_monthly_savings_usd{${labels},optimization="cross_zone"} 0`,
    ];
    expect(await series(metrics)).toEqual([
      ...money,
      `kopek_workload_cross_zone_monthly_cost_usd{${labels}} 2`,
      `kopek_workload_cross_zone_bytes_monthly{${labels}} ${100 * BYTES_PER_GB}`,
      `kopek_workload_cross_zone_edge_bytes_monthly{${labels},${peer}} ${60 * BYTES_PER_GB}`,
      `kopek_workload_cross_zone_edge_monthly_cost_usd{${labels},${peer}} 1.2`,
    ]);

    // Traffic no longer measured: the bytes and the edges go, the cost stays (0).
    const { crossZone: _, ...withoutCrossZone } = status;
    expect(
      results.set(key, { ...web, policy: 'recommend-everywhere', status: withoutCrossZone }),
    ).toEqual([]);
    expect(await series(metrics)).toEqual([
      ...money,
      `kopek_workload_cross_zone_monthly_cost_usd{${labels}} 0`,
    ]);

    // A workload that goes takes its series along.
    expect(results.delete(key)).toEqual(['recommend-everywhere']);
    expect(await series(metrics)).toEqual([]);
    expect(results.delete(key)).toEqual([]);
  });
});
