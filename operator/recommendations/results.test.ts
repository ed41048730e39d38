import { describe, expect, it } from 'vitest';
import type { WorkloadRecommendationStatus } from '../../recommender/api/v1alpha1.ts';
import { createMetrics } from '../metrics.ts';
import { WorkloadResults } from './results.ts';

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
    services: [{ name: 'web', crossZoneFraction: '0.5' }],
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
  it('keeps only the money and verdicts of a status, and exports its series from the whole', async () => {
    const metrics = createMetrics();
    const results = new WorkloadResults(metrics);
    const key = 'wl/shop/Deployment/web';
    results.set(key, {
      namespace: 'shop',
      kind: 'Deployment',
      name: 'web',
      policy: 'recommend-everywhere',
      status,
    });
    expect(results.get(key)).toEqual({
      namespace: 'shop',
      kind: 'Deployment',
      name: 'web',
      policy: 'recommend-everywhere',
      status: {
        monthlyCostUSD: '120.50',
        potentialMonthlySavingsUSD: '40.10',
        spot: { verdict: 'Recommended', monthlySavingsUSD: '30.00' },
        arm64: { verdict: 'Possible', monthlySavingsUSD: '10.10' },
        crossZone: { verdict: 'NotRecommended', monthlySavingsUSD: '0' },
      },
    });
    const labels = { namespace: 'shop', kind: 'Deployment', name: 'web' };
    const value = async (gauge: typeof metrics.workloadMonthlyCost): Promise<number | undefined> =>
      (await gauge.get()).values.find((v) => v.labels.name === labels.name)?.value;
    expect(await value(metrics.workloadMonthlyCost)).toBe(120.5);
    expect(await value(metrics.workloadCrossZoneCost)).toBe(2);
  });
});
