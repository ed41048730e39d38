import { describe, expect, it } from 'vitest';
import type { Verdict } from './api/v1alpha1.ts';
import {
  BYTES_PER_GB,
  chooseFix,
  crossZoneFraction,
  evaluateCrossZone,
  formatFraction,
  formatGB,
} from './cross-zone.ts';
import type { WorkloadFacts } from './facts.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { CLUSTER, codes, goodFacts, schemaProblems, service } from './testing.ts';
import { SECONDS_PER_MONTH, applyTraffic, type FlowRow } from './traffic.ts';

const base = goodFacts();
const GB = BYTES_PER_GB;

interface Case {
  name: string;
  facts: Partial<WorkloadFacts>;
  verdict: Verdict;
  has: string[];
}

const CASES: Case[] = [
  {
    name: 'one endpoint per zone, clients everywhere, no telemetry',
    facts: {},
    verdict: 'Recommended',
    has: ['CrossZoneShare', 'EstimatedFromPlacement', 'TrafficVolumeUnknown'],
  },
  {
    name: 'trafficDistribution already set',
    facts: { services: [service('checkout', { trafficDistribution: 'PreferClose' })] },
    verdict: 'AlreadyOptimized',
    has: ['TopologyAwareRouting'],
  },
  {
    name: 'topology-mode: Auto already set',
    facts: { services: [service('checkout', { topologyMode: 'Auto' })] },
    verdict: 'AlreadyOptimized',
    has: ['TopologyAwareRouting'],
  },
  {
    name: 'no Service',
    facts: { services: [] },
    verdict: 'NotApplicable',
    has: ['NoServiceTraffic'],
  },
  {
    name: 'only a headless Service',
    facts: { services: [service('db', { headless: true })] },
    verdict: 'NotApplicable',
    has: ['HeadlessServiceOnly'],
  },
  {
    name: "a sharded controller StatefulSet that only a metrics Service selects (Argo CD's)",
    facts: {
      kind: 'StatefulSet',
      replicas: 1,
      services: [
        service('argocd-metrics', {
          metricsOnly: true,
          readyEndpointsPerZone: { 'us-east-1a': 1 },
        }),
      ],
    },
    verdict: 'NotApplicable',
    has: ['MetricsServiceOnly'],
  },
  {
    name: 'a metrics Service beside a client Service: only the client one counts',
    facts: {
      services: [
        service('checkout'),
        service('checkout-metrics', {
          metricsOnly: true,
          readyEndpointsPerZone: { 'us-east-1a': 1 },
        }),
      ],
    },
    verdict: 'Recommended',
    has: ['CrossZoneShare'],
  },
  {
    name: 'clients and endpoints in one zone',
    facts: {
      services: [
        service('checkout', {
          readyEndpointsPerZone: { 'us-east-1a': 3 },
          clientWeightsByZone: { 'us-east-1a': 5 },
        }),
      ],
    },
    verdict: 'AlreadyOptimized',
    has: ['NoCrossZoneTraffic'],
  },
  {
    name: 'every endpoint in one zone, replicas enough to spread',
    facts: { services: [service('checkout', { readyEndpointsPerZone: { 'us-east-1a': 3 } })] },
    verdict: 'Possible',
    has: ['EndpointsUnbalanced'],
  },
  {
    name: 'fewer replicas than client zones',
    facts: {
      replicas: 1,
      services: [service('checkout', { readyEndpointsPerZone: { 'us-east-1a': 1 } })],
    },
    verdict: 'Possible',
    has: ['TooFewReplicasForZones'],
  },
  {
    name: 'topology-mode on an old cluster needs 3 endpoints per zone',
    facts: { cluster: { ...CLUSTER, kubernetesMinor: 29 } },
    verdict: 'Possible',
    has: ['TooFewReplicasForZones'],
  },
  {
    name: 'measured cross-zone traffic worth fixing',
    facts: { services: [service('checkout', { measuredCrossZoneBytesPerMonth: 1000 * GB })] },
    verdict: 'Recommended',
    has: ['MeasuredTraffic', 'CrossZoneShare'],
  },
  {
    name: 'measured traffic too small for the policy',
    facts: { services: [service('checkout', { measuredCrossZoneBytesPerMonth: 100 * GB })] },
    verdict: 'NotRecommended',
    has: ['BelowSavingsThreshold'],
  },
  {
    name: 'cross-zone advice turned off',
    facts: {
      policy: { ...DEFAULT_POLICY, crossZone: { enabled: false, minMonthlySavingsUSD: 10 } },
    },
    verdict: 'NotApplicable',
    has: ['DisabledByPolicy'],
  },
  {
    name: 'no ready endpoint',
    facts: { services: [service('checkout', { readyEndpointsPerZone: {} })] },
    verdict: 'Unknown',
    has: ['NoReadyEndpoints'],
  },
];

describe('cross-zone: every signal', () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.verdict} (${c.has.join(', ')})`, () => {
      const { result } = evaluateCrossZone({ ...base, ...c.facts });
      expect(result.verdict).toBe(c.verdict);
      expect(codes(result)).toEqual(expect.arrayContaining(c.has));
    });
  }
});

describe('cross-zone: estimates, money and fixes', () => {
  it('estimates 1 − Σ a·b: three even zones → 2/3', () => {
    const even = new Map([
      ['a', 1 / 3],
      ['b', 1 / 3],
      ['c', 1 / 3],
    ]);
    expect(crossZoneFraction(even, even)).toBeCloseTo(2 / 3, 12);
    expect(
      crossZoneFraction(
        new Map([['a', 1]]),
        new Map([
          ['a', 0.5],
          ['b', 0.5],
        ]),
      ),
    ).toBe(0.5);
    expect(crossZoneFraction(new Map([['a', 1]]), new Map([['b', 1]]))).toBe(1);
  });

  it('reports each Service with its share, endpoints per zone and fix, and patches it', () => {
    const { result, actionable, plan } = evaluateCrossZone(base);
    expect(result.source).toBe('Estimated');
    expect(result.services).toEqual([
      {
        name: 'checkout',
        crossZoneFraction: '0.6667',
        readyEndpointsPerZone: { 'us-east-1a': 1, 'us-east-1b': 1, 'us-east-1c': 1 },
        fix: 'Set spec.trafficDistribution: PreferSameZone on Service checkout.',
      },
    ]);
    expect(result.monthlyCrossZoneGB).toBeUndefined();
    expect(actionable).toBe(true);
    expect(plan).toEqual({
      services: [{ name: 'checkout', patch: { spec: { trafficDistribution: 'PreferSameZone' } } }],
      spreadOverZones: false,
    });
  });

  it('prices measured traffic at $0.02/GB: 1000 GB → 20.00/mo, all of it saved', () => {
    const { result } = evaluateCrossZone({
      ...base,
      services: [service('checkout', { measuredCrossZoneBytesPerMonth: 1000 * GB })],
    });
    expect(result).toMatchObject({
      source: 'Measured',
      monthlyCrossZoneGB: '1000',
      monthlyCostUSD: '20.00',
      monthlySavingsUSD: '20.00',
    });
  });

  it('applies the estimated share to a measured total: 3000 GB × 2/3 → 2000 GB, 40.00/mo', () => {
    const { result } = evaluateCrossZone({
      ...base,
      services: [service('checkout', { measuredBytesPerMonth: 3000 * GB })],
    });
    expect(result).toMatchObject({
      source: 'Estimated',
      monthlyCrossZoneGB: '2000',
      monthlyCostUSD: '40.00',
      monthlySavingsUSD: '40.00',
    });
  });

  it('counts client zones without endpoints as still crossing after the fix', () => {
    // Clients: a, b, c evenly; endpoints in a and b only, two replicas: c's third stays cross-zone.
    const facts = {
      ...base,
      replicas: 2,
      services: [
        service('checkout', {
          readyEndpointsPerZone: { 'us-east-1a': 1, 'us-east-1b': 1 },
          measuredCrossZoneBytesPerMonth: 3000 * GB,
        }),
      ],
    };
    const { result, actionable } = evaluateCrossZone(facts);
    expect(result.verdict).toBe('Possible');
    expect(actionable).toBe(false);
    // 3000 GB × (2/3 − 1/3) / (2/3) = 1500 GB saved → 30.00
    expect(result.monthlySavingsUSD).toBe('30.00');
  });

  it('spreads pods over zones first when endpoints sit in one zone', () => {
    const { actionable, plan, result } = evaluateCrossZone({
      ...base,
      services: [service('checkout', { readyEndpointsPerZone: { 'us-east-1a': 3 } })],
    });
    expect(actionable).toBe(true);
    expect(plan.spreadOverZones).toBe(true);
    expect(result.services?.[0]?.fix).toMatch(/^First spread the pods evenly over zones/);
  });

  it('picks the fix the Kubernetes version supports', () => {
    expect(chooseFix(35)).toEqual({ kind: 'trafficDistribution', value: 'PreferSameZone' });
    expect(chooseFix(34)).toEqual({ kind: 'trafficDistribution', value: 'PreferSameZone' });
    expect(chooseFix(32)).toEqual({ kind: 'trafficDistribution', value: 'PreferClose' });
    expect(chooseFix(undefined)).toEqual({ kind: 'trafficDistribution', value: 'PreferClose' });
    expect(chooseFix(30)).toEqual({ kind: 'topologyMode' });
  });

  it('patches old clusters with the topology-mode annotation', () => {
    const facts = {
      ...base,
      replicas: 9,
      cluster: { ...CLUSTER, kubernetesMinor: 30 },
      services: [
        service('checkout', {
          readyEndpointsPerZone: { 'us-east-1a': 3, 'us-east-1b': 3, 'us-east-1c': 3 },
        }),
      ],
    };
    const { plan, result } = evaluateCrossZone(facts);
    expect(result.verdict).toBe('Recommended');
    expect(plan.services[0]?.patch).toEqual({
      metadata: { annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } },
    });
  });

  it('formats shares and volumes as the CRD wants them', () => {
    expect(formatFraction(2 / 3)).toBe('0.6667');
    expect(formatFraction(1)).toBe('1');
    expect(formatFraction(0.99999)).toBe('1');
    expect(formatFraction(0)).toBe('0');
    expect(formatFraction(0.5)).toBe('0.5');
    expect(formatFraction(-0.1)).toBe('0');
    expect(formatGB(1560)).toBe('1560');
    expect(formatGB(0.0004)).toBe('0');
    expect(formatGB(12.34567)).toBe('12.346');
  });
});

describe('cross-zone: measured traffic (facts from applyTraffic)', () => {
  const [A, B, C] = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
  const web = goodFacts({ name: 'web', services: [] });
  /** Beyla rows between web and checkout: `gb` GB a month from web in `from` to checkout in `to`. */
  const rows = (list: [string, string, number][]): FlowRow[] =>
    list.map(([from, to, gb]) => ({
      from: { namespace: 'shop', name: 'web' },
      to: { namespace: 'shop', name: 'checkout' },
      fromZone: from,
      toZone: to,
      bytesPerSecond: (gb * GB) / SECONDS_PER_MONTH,
    }));
  const measured = (facts: WorkloadFacts, list: [string, string, number][]) =>
    applyTraffic([web, facts], { source: 'Beyla', window: '7d', flows: rows(list) }).facts[1] ??
    facts;

  it('prices the measured bytes, names the source and window, and lists the edge', () => {
    // Clients: half the traffic from a, half from b (in-zone rows included).
    const facts = measured(base, [
      [A, B, 600],
      [B, C, 400],
      [A, A, 400],
      [B, B, 600],
    ]);
    const { result } = evaluateCrossZone(facts);
    // 1000 GB across × $0.02 = 20.00; clients in a and b both have endpoints: all of it saved.
    expect(result).toMatchObject({
      verdict: 'Recommended',
      source: 'Measured',
      monthlyCrossZoneGB: '1000',
      monthlyCostUSD: '20.00',
      monthlySavingsUSD: '20.00',
      edges: [
        {
          peer: { namespace: 'shop', kind: 'Deployment', name: 'web' },
          monthlyCrossZoneGB: '1000',
          monthlyCostUSD: '20.00',
        },
      ],
    });
    const reason = result.reasons?.find((r) => r.code === 'MeasuredTraffic');
    expect(reason?.message).toMatch(/^Grafana Beyla measured 1000 GB a month crossing zones/);
    expect(reason?.message).toContain('over the last 7d, scaled to a 730-hour month');
    expect(reason?.message).toContain('counted once, at its server side');
    expect(codes(result)).not.toContain('EstimatedFromPlacement');
    expect(schemaProblems({ crossZone: result })).toEqual([]);
  });

  it('saves only what comes from client zones that have ready endpoints', () => {
    // Two replicas in a and b; clients in c keep crossing after the fix.
    const facts = measured(
      {
        ...base,
        replicas: 2,
        services: [service('checkout', { readyEndpointsPerZone: { [A]: 1, [B]: 1 } })],
      },
      [
        [A, B, 600],
        [B, A, 400],
        [C, A, 500],
      ],
    );
    const { result } = evaluateCrossZone(facts);
    // 1500 GB cost 30.00; from a and b: 1000 GB → 20.00 saved.
    expect(result).toMatchObject({ monthlyCostUSD: '30.00', monthlySavingsUSD: '20.00' });
    expect(codes(result)).toContain('TooFewReplicasForZones');
  });

  it('weighs client zones by measured traffic, not pod counts, before routing in-zone', () => {
    // Pod counts put clients evenly in a, b, c; the traffic says 90% comes from a, where
    // checkout has one endpoint of three: in-zone routing would pile a's clients on it.
    const flows: [string, string, number][] = [
      [A, A, 900],
      [A, B, 900],
      [A, C, 900],
      [B, B, 100],
      [C, C, 200],
    ];
    expect(evaluateCrossZone(base).result.verdict).toBe('Recommended');
    const { result, plan } = evaluateCrossZone(measured(base, flows));
    expect(result.verdict).toBe('Possible');
    expect(codes(result)).toContain('EndpointsUnbalanced');
    expect(plan.spreadOverZones).toBe(true);
  });

  it('says why the estimate is used when telemetry failed or saw nothing of it', () => {
    const failed = evaluateCrossZone({ ...base, traffic: { error: 'Prometheus is down' } }).result;
    expect(failed.source).toBe('Estimated');
    expect(failed.reasons?.find((r) => r.code === 'TrafficTelemetryUnavailable')?.message).toBe(
      'Traffic telemetry could not be read (Prometheus is down); the cross-zone share is estimated from where clients and endpoints run.',
    );
    expect(failed.reasons?.find((r) => r.code === 'EstimatedFromPlacement')?.message).toMatch(
      /^No measured traffic; up to 67%/,
    );
    const unseen = evaluateCrossZone(measured(base, [])).result;
    expect(unseen.source).toBe('Estimated');
    expect(codes(unseen)).toEqual(expect.arrayContaining(['NoMeasuredTraffic']));
  });

  it('still shows the measured money of a workload no Service can route', () => {
    const client = goodFacts({ name: 'checkout', services: [] });
    const facts = applyTraffic([client], {
      source: 'Beyla',
      window: '7d',
      flows: [
        {
          from: { namespace: 'shop', name: 'checkout' },
          to: { namespace: '', name: '' },
          fromZone: A,
          toZone: B,
          bytesPerSecond: (50 * GB) / SECONDS_PER_MONTH,
        },
      ],
    }).facts[0];
    if (!facts) throw new Error('no facts');
    const { result } = evaluateCrossZone(facts);
    expect(result).toMatchObject({
      verdict: 'NotApplicable',
      source: 'Measured',
      monthlyCrossZoneGB: '50',
      monthlyCostUSD: '1.00',
      edges: [{ peer: { name: 'unknown' }, monthlyCostUSD: '1.00' }],
    });
    expect(codes(result)).toEqual(['NoServiceTraffic', 'MeasuredTraffic']);
  });
});
