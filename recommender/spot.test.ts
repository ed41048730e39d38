import { describe, expect, it } from 'vitest';
import type { Verdict } from './api/v1alpha1.ts';
import type { WorkloadFacts } from './facts.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { SNAPSHOT_PRICES } from './pricing.ts';
import { evaluateSpot } from './spot.ts';
import {
  CLUSTER,
  ZONES,
  codes,
  container,
  goodFacts,
  node,
  omit,
  pod,
  template,
} from './testing.ts';

const base = goodFacts();
const onType = (type: string, extra: Parameters<typeof node>[3] = {}) =>
  ZONES.map((z, i) => pod(`p-${i}`, node(`n-${i}`, z, type, extra)));
const withTemplate = (t: Parameters<typeof template>[0]): Partial<WorkloadFacts> => ({
  template: template(t),
});
const spotPolicy = (p: Partial<typeof DEFAULT_POLICY.spot>) => ({
  ...DEFAULT_POLICY,
  spot: { ...DEFAULT_POLICY.spot, ...p },
});

interface Case {
  name: string;
  facts: Partial<WorkloadFacts>;
  /** For changes a partial cannot express (removing a field). */
  build?: (f: WorkloadFacts) => WorkloadFacts;
  verdict: Verdict;
  has: string[];
  hasNot?: string[];
}

const CASES: Case[] = [
  {
    name: 'a well-behaved Deployment',
    facts: {},
    verdict: 'Recommended',
    has: [
      'StatelessController',
      'EnoughReplicas',
      'PodDisruptionBudgetAllows',
      'FastShutdown',
      'ReadinessProbe',
      'SpreadConfigured',
      'RunsInSeveralZones',
      'LowInterruptionRisk',
      'ManyInstanceTypesFit',
    ],
  },
  {
    name: 'Spot turned off by the policy',
    facts: { policy: spotPolicy({ enabled: false }) },
    verdict: 'NotApplicable',
    has: ['DisabledByPolicy'],
  },
  {
    name: 'kopek.dev/spot: never',
    facts: { annotations: { 'kopek.dev/spot': 'never' } },
    verdict: 'NotApplicable',
    has: ['OptedOut'],
  },
  {
    name: 'a DaemonSet',
    facts: { kind: 'DaemonSet' },
    verdict: 'NotApplicable',
    has: ['DaemonSetRunsEverywhere'],
  },
  {
    name: 'scaled to zero',
    facts: { replicas: 0, pods: [] },
    verdict: 'NotApplicable',
    has: ['ScaledToZero'],
  },
  {
    name: 'a ReplicaSet',
    facts: { kind: 'ReplicaSet' },
    verdict: 'Recommended',
    has: ['StatelessController'],
  },
  {
    name: 'an Argo Rollout',
    facts: { kind: 'Rollout' },
    verdict: 'Recommended',
    has: ['StatelessController'],
  },
  {
    name: 'a StatefulSet with volume claims',
    facts: { kind: 'StatefulSet', ...withTemplate({ volumeClaimTemplates: ['data'] }) },
    verdict: 'NotRecommended',
    has: ['StatefulWithVolumeClaims', 'StatefulSetIdentity'],
  },
  {
    name: 'a StatefulSet mounting a claim',
    facts: {
      kind: 'StatefulSet',
      ...withTemplate({
        volumes: [{ name: 'd', kind: 'persistentVolumeClaim', claimName: 'shared' }],
      }),
    },
    verdict: 'NotRecommended',
    has: ['StatefulWithVolumeClaims'],
  },
  {
    name: 'a StatefulSet without storage',
    facts: { kind: 'StatefulSet' },
    verdict: 'Recommended',
    has: ['StatefulSetIdentity'],
    hasNot: ['StatelessController'],
  },
  {
    name: 'a Deployment mounting a claim',
    facts: withTemplate({
      volumes: [{ name: 'd', kind: 'persistentVolumeClaim', claimName: 'grafana' }],
    }),
    verdict: 'Recommended',
    has: ['UsesPersistentVolumeClaim'],
  },
  {
    name: 'a Deployment mounting a ReadWriteOnce claim on a zonal (EBS) volume',
    facts: withTemplate({
      volumes: [
        {
          name: 'd',
          kind: 'persistentVolumeClaim',
          claimName: 'grafana',
          zonalVolume: 'PersistentVolume pv-1 is pinned to zone us-east-1a',
        },
      ],
    }),
    verdict: 'NotRecommended',
    has: ['ZonalVolumeClaim'],
    hasNot: ['UsesPersistentVolumeClaim'],
  },
  {
    name: 'a Job mounting a claim on a zonal volume: the same rule for every kind',
    facts: {
      kind: 'Job',
      job: { backoffLimit: 3, observedRunSeconds: 60 },
      ...withTemplate({
        volumes: [
          {
            name: 'd',
            kind: 'persistentVolumeClaim',
            claimName: 'scratch',
            zonalVolume: 'StorageClass gp3 provisions EBS volumes',
          },
        ],
      }),
    },
    verdict: 'NotRecommended',
    has: ['ZonalVolumeClaim'],
  },
  {
    name: 'a hostPath volume',
    facts: withTemplate({ volumes: [{ name: 'cache', kind: 'hostPath' }] }),
    verdict: 'NotRecommended',
    has: ['HostPathVolume'],
  },
  {
    name: 'a local PersistentVolume',
    facts: withTemplate({ volumes: [{ name: 'd', kind: 'local', claimName: 'nvme' }] }),
    verdict: 'NotRecommended',
    has: ['LocalPersistentVolume'],
  },
  {
    name: 'an emptyDir is fine',
    facts: withTemplate({ volumes: [{ name: 'tmp', kind: 'emptyDir' }] }),
    verdict: 'Recommended',
    has: [],
    hasNot: ['HostPathVolume'],
  },
  {
    name: 'a single replica',
    facts: { replicas: 1, pods: onType('m6i.xlarge').slice(0, 1) },
    verdict: 'NotRecommended',
    has: ['SingleReplica'],
  },
  {
    name: 'fewer replicas than the policy wants',
    facts: { replicas: 2, policy: spotPolicy({ minReplicas: 3 }) },
    verdict: 'Possible',
    has: ['TooFewReplicas'],
  },
  {
    name: 'an HPA minimum counts, not spec.replicas',
    facts: { replicas: 1, hpa: { name: 'hpa', minReplicas: 4, maxReplicas: 10 } },
    verdict: 'Recommended',
    has: ['EnoughReplicas'],
  },
  {
    name: 'an HPA minimum of 1',
    facts: { replicas: 5, hpa: { name: 'hpa', minReplicas: 1, maxReplicas: 10 } },
    verdict: 'NotRecommended',
    has: ['SingleReplica'],
  },
  {
    name: 'no PodDisruptionBudget',
    facts: {},
    build: (f) => omit(f, 'pdb'),
    verdict: 'Recommended',
    has: ['NoPodDisruptionBudget'],
  },
  {
    name: 'a PDB allowing no disruption',
    facts: { pdb: { name: 'strict', disruptionsAllowed: 0 } },
    verdict: 'Possible',
    has: ['PodDisruptionBudgetBlocksEviction'],
  },
  {
    name: 'a long grace period',
    facts: withTemplate({ terminationGracePeriodSeconds: 180 }),
    verdict: 'Possible',
    has: ['GracePeriodTooLong'],
  },
  {
    name: 'a long preStop sleep',
    facts: withTemplate({
      containers: [
        container('checkout', 'ghcr.io/acme/checkout:1.0', { preStopSleepSeconds: 100 }),
      ],
    }),
    verdict: 'Possible',
    has: ['GracePeriodTooLong'],
  },
  {
    name: 'a policy allowing a longer shutdown',
    facts: {
      ...withTemplate({ terminationGracePeriodSeconds: 110 }),
      policy: spotPolicy({ maxTerminationGracePeriodSeconds: 115 }),
    },
    verdict: 'Recommended',
    has: ['FastShutdown'],
  },
  {
    name: 'no readiness probe',
    facts: withTemplate({
      containers: [container('checkout', 'ghcr.io/acme/checkout:1.0', { readinessProbe: false })],
    }),
    verdict: 'Recommended',
    has: ['NoReadinessProbe'],
  },
  {
    name: 'a probed main container beside an unprobed native sidecar',
    facts: withTemplate({
      containers: [
        container('envoy', 'envoyproxy/envoy:v1.34.1', { role: 'sidecar', readinessProbe: false }),
        container('checkout', 'ghcr.io/acme/checkout:1.0'),
      ],
    }),
    verdict: 'Recommended',
    has: ['ReadinessProbe'],
    hasNot: ['NoReadinessProbe'],
  },
  {
    name: 'a probed main container beside an injected istio-proxy without a probe',
    facts: withTemplate({
      containers: [
        container('checkout', 'ghcr.io/acme/checkout:1.0'),
        container('istio-proxy', 'docker.io/istio/proxyv2:1.24.0', { readinessProbe: false }),
      ],
    }),
    verdict: 'Recommended',
    has: ['ReadinessProbe'],
    hasNot: ['NoReadinessProbe'],
  },
  {
    name: 'only helpers: they are the main containers',
    facts: withTemplate({
      containers: [container('envoy', 'envoyproxy/envoy:v1.34.1', { readinessProbe: false })],
    }),
    verdict: 'Recommended',
    has: ['NoReadinessProbe'],
  },
  {
    name: 'no spread and every replica on one node',
    facts: {
      ...withTemplate({ topologySpread: [] }),
      pods: [0, 1, 2].map((i) => pod(`p-${i}`, node('one', 'us-east-1a'))),
    },
    verdict: 'Possible',
    has: ['NoSpreadConstraint', 'ReplicasOnOneNode'],
    hasNot: ['RunsInSeveralZones'],
  },
  {
    name: 'a spread over nodes that found only one node only lowers the score',
    facts: {
      ...withTemplate({
        topologySpread: [
          {
            topologyKey: 'kubernetes.io/hostname',
            maxSkew: 1,
            whenUnsatisfiable: 'ScheduleAnyway',
          },
        ],
      }),
      pods: [0, 1, 2].map((i) => pod(`p-${i}`, node('one', 'us-east-1a'))),
    },
    verdict: 'Recommended',
    has: ['SpreadConfigured', 'ReplicasOnOneNode'],
  },
  {
    name: 'pod anti-affinity spreads too',
    facts: withTemplate({
      topologySpread: [],
      affinity: {
        podAntiAffinity: {
          requiredTopologyKeys: ['kubernetes.io/hostname'],
          preferredTopologyKeys: [],
        },
      },
    }),
    verdict: 'Recommended',
    has: ['SpreadConfigured'],
  },
  {
    name: 'a system-critical priority class',
    facts: withTemplate({ priorityClassName: 'system-node-critical' }),
    verdict: 'NotRecommended',
    has: ['SystemCriticalPriority'],
  },
  {
    name: 'another priority class is fine',
    facts: withTemplate({ priorityClassName: 'high-priority' }),
    verdict: 'Recommended',
    has: [],
    hasNot: ['SystemCriticalPriority'],
  },
  {
    name: 'karpenter.sh/do-not-disrupt',
    facts: withTemplate({ annotations: { 'karpenter.sh/do-not-disrupt': 'true' } }),
    verdict: 'NotRecommended',
    has: ['DoNotDisrupt'],
  },
  {
    name: 'safe-to-evict: "false"',
    facts: { annotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' } },
    verdict: 'NotRecommended',
    has: ['NotSafeToEvict'],
  },
  {
    name: 'already on Spot',
    facts: { pods: onType('m6i.xlarge', { capacityType: 'spot' }) },
    verdict: 'AlreadyOptimized',
    has: ['AlreadyOnSpot'],
  },
  {
    name: 'required to be on Spot, no pod running',
    facts: {
      pods: [],
      ...withTemplate({ nodeSelector: { 'karpenter.sh/capacity-type': 'spot' } }),
    },
    verdict: 'AlreadyOptimized',
    has: ['AlreadyOnSpot'],
  },
  {
    name: 'partly on Spot',
    facts: {
      pods: [
        ...onType('m6i.xlarge').slice(0, 2),
        pod('p-s', node('s', 'us-east-1c', 'm6i.xlarge', { capacityType: 'spot' })),
      ],
    },
    verdict: 'Recommended',
    has: ['PartlyOnSpot'],
  },
  {
    name: 'on Spot despite a hostPath volume',
    facts: {
      pods: onType('m6i.xlarge', { capacityType: 'spot' }),
      ...withTemplate({ volumes: [{ name: 'h', kind: 'hostPath' }] }),
    },
    verdict: 'NotRecommended',
    has: ['HostPathVolume', 'AtRiskOnSpot'],
    hasNot: ['AlreadyOnSpot'],
  },
  {
    name: 'a single replica already on Spot is at risk, not optimized',
    facts: { replicas: 1, pods: onType('m6i.xlarge', { capacityType: 'spot' }).slice(0, 1) },
    verdict: 'NotRecommended',
    has: ['SingleReplica', 'AtRiskOnSpot'],
    hasNot: ['AlreadyOnSpot'],
  },
  {
    name: 'partly on Spot with a zonal volume claim is at risk',
    facts: {
      pods: [
        ...onType('m6i.xlarge').slice(0, 2),
        pod('p-s', node('s', 'us-east-1c', 'm6i.xlarge', { capacityType: 'spot' })),
      ],
      ...withTemplate({
        volumes: [
          { name: 'd', kind: 'persistentVolumeClaim', claimName: 'data', zonalVolume: 'EBS' },
        ],
      }),
    },
    verdict: 'NotRecommended',
    has: ['ZonalVolumeClaim', 'PartlyOnSpot', 'AtRiskOnSpot'],
  },
  {
    name: 'pinned to on-demand by nodeSelector',
    facts: withTemplate({ nodeSelector: { 'karpenter.sh/capacity-type': 'on-demand' } }),
    verdict: 'Possible',
    has: ['OnDemandPinned'],
  },
  {
    name: 'pinned to ON_DEMAND by required affinity (EKS node groups)',
    facts: withTemplate({
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: 'eks.amazonaws.com/capacityType', operator: 'In', values: ['ON_DEMAND'] },
                ],
              },
            ],
          },
        },
      },
    }),
    verdict: 'Possible',
    has: ['OnDemandPinned'],
  },
  {
    name: 'preferring on-demand',
    facts: withTemplate({
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 10,
              preference: {
                matchExpressions: [
                  { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['on-demand'] },
                ],
              },
            },
          ],
        },
      },
    }),
    verdict: 'Recommended',
    has: ['PrefersOnDemand'],
  },
  {
    name: 'a type with frequent interruptions',
    facts: { pods: onType('m6i.2xlarge') },
    verdict: 'Recommended',
    has: ['HighInterruptionRisk'],
  },
  {
    name: 'a type with moderate interruptions',
    facts: { pods: onType('m5.2xlarge') },
    verdict: 'Recommended',
    has: ['ModerateInterruptionRisk'],
  },
  {
    name: 'a type the Spot Advisor does not know',
    facts: { pods: onType('c8a.xlarge', { cpuCores: 4, memoryBytes: 8 * 1024 ** 3 }) },
    verdict: 'Recommended',
    has: ['InterruptionRiskUnknown'],
  },
  {
    name: 'a pod few instance types can hold',
    facts: {
      pods: ZONES.map((z, i) => pod(`p-${i}`, node(`n-${i}`, z, 'u-6tb1.56xlarge'), 200, 2000)),
    },
    verdict: 'Recommended',
    has: ['FewInstanceTypesFit'],
  },
  {
    name: 'a low Spot placement score',
    facts: { spotPlacementScore: 2 },
    verdict: 'Recommended',
    has: ['LowPlacementScore'],
  },
  {
    name: 'a high Spot placement score',
    facts: { spotPlacementScore: 9 },
    verdict: 'Recommended',
    has: ['HighPlacementScore'],
  },
  {
    name: 'a Job without retries',
    facts: { kind: 'Job', job: { backoffLimit: 0 } },
    verdict: 'Possible',
    has: ['JobNotRetried', 'JobRunTimeUnknown'],
  },
  {
    name: 'a short, retried Job',
    facts: { kind: 'Job', job: { backoffLimit: 3, observedRunSeconds: 600 } },
    verdict: 'Recommended',
    has: ['JobRetries', 'ShortRuns'],
    hasNot: ['EnoughReplicas', 'NoReadinessProbe'],
  },
  {
    name: 'a long Job on a type that is often interrupted',
    facts: { kind: 'Job', job: { activeDeadlineSeconds: 6 * 3600 }, pods: onType('m6i.2xlarge') },
    verdict: 'Possible',
    has: ['LongRunningJob', 'HighInterruptionRisk'],
  },
  {
    name: 'a CronJob whose interruptions do not count as failures',
    facts: {
      kind: 'CronJob',
      pods: [],
      job: { observedRunSeconds: 120, ignoresDisruptions: true },
    },
    verdict: 'Recommended',
    has: ['RetriesIgnoreDisruptions', 'NoRunningPods'],
  },
  {
    name: 'an instance type without a price',
    facts: { pods: onType('x9z.large') },
    verdict: 'Unknown',
    has: ['NoPrice'],
  },
  {
    name: 'nodes without an instance-type label',
    facts: { pods: ZONES.map((z, i) => pod(`p-${i}`, { name: `n-${i}`, zone: z })) },
    verdict: 'Unknown',
    has: ['NoPrice'],
  },
  {
    name: 'no region label anywhere',
    facts: {
      cluster: omit(CLUSTER, 'region'),
      pods: ZONES.map((z, i) => pod(`p-${i}`, omit(node(`n-${i}`, z), 'region'))),
    },
    verdict: 'Recommended',
    has: ['RegionUnknown'],
  },
  {
    name: 'a region without its own prices',
    facts: { cluster: { ...CLUSTER, region: 'eu-west-1' } },
    verdict: 'Recommended',
    has: ['PricesFromFallbackRegion'],
  },
  {
    name: 'a cluster without Spot nodes',
    facts: { cluster: { ...CLUSTER, capacityTypes: ['on-demand'] } },
    verdict: 'Recommended',
    has: ['NoSpotNodesYet'],
  },
  {
    name: 'pods without requests',
    facts: { pods: ZONES.map((z, i) => pod(`p-${i}`, node(`n-${i}`, z), 0, 0)) },
    verdict: 'Recommended',
    has: ['NoResourceRequests'],
  },
];

describe('Spot: every signal', () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.verdict} (${c.has.join(', ') || 'no particular code'})`, () => {
      const facts = { ...base, ...c.facts };
      const { result } = evaluateSpot(c.build?.(facts) ?? facts, SNAPSHOT_PRICES);
      expect(result.verdict).toBe(c.verdict);
      expect(codes(result)).toEqual(expect.arrayContaining(c.has));
      for (const code of c.hasNot ?? []) expect(codes(result)).not.toContain(code);
    });
  }
});

describe('Spot: readiness probes per container', () => {
  it('names the main container without a probe, not the sidecar', () => {
    const facts = {
      ...base,
      template: template({
        containers: [
          container('log-shipper', 'fluent/fluent-bit:3.1', { readinessProbe: false }),
          container('api', 'ghcr.io/acme/api:2', { readinessProbe: false }),
          container('worker', 'ghcr.io/acme/worker:2'),
        ],
      }),
    };
    const reason = evaluateSpot(facts, SNAPSHOT_PRICES).result.reasons?.find(
      (r) => r.code === 'NoReadinessProbe',
    );
    expect(reason?.message).toMatch(/^Main container api has no readiness probe/);
  });
});

describe('Spot: datastores outside StatefulSets', () => {
  const running = (image: string, extra: Parameters<typeof container>[2] = {}) => ({
    ...base,
    template: template({ containers: [container('main', image, extra)] }),
  });
  it.each([
    ['redis:7.2 in a Deployment', running('redis:7.2'), /main runs Redis \(image redis\)/],
    ['bitnami/mongodb by its image', running('docker.io/bitnami/mongodb:7.0'), /MongoDB/],
    ['a MySQL image by digest', running('mysql@sha256:0123abcd'), /MySQL/],
    [
      "an unknown image on Kafka's port",
      running('ghcr.io/acme/broker:1', { ports: [9092] }),
      /main runs Kafka \(port 9092\)/,
    ],
  ])('%s: lowers Spot, says why, and is not called stateless', (_, facts, says) => {
    const { result } = evaluateSpot(facts, SNAPSHOT_PRICES);
    const reason = result.reasons?.find((r) => r.code === 'LooksLikeDatastore');
    expect(reason?.effect).toBe('Lowers');
    expect(reason?.message).toMatch(says);
    expect(codes(result)).not.toContain('StatelessController');
    expect(result.score).toBeLessThan(evaluateSpot(base, SNAPSHOT_PRICES).result.score);
  });
  it.each([
    ['pgbouncer on 5432', running('bitnami/pgbouncer:1', { ports: [5432] })],
    ['redis-exporter', running('oliver006/redis_exporter:v1', { ports: [9121] })],
    ['a web app', running('ghcr.io/acme/checkout:1.0', { ports: [8080] })],
    [
      'MySQL in a StatefulSet (blocked or lowered by its own rules)',
      { ...running('mysql:8'), kind: 'StatefulSet' as const },
    ],
  ])('%s: no datastore reason', (_, facts) => {
    expect(codes(evaluateSpot(facts, SNAPSHOT_PRICES).result)).not.toContain('LooksLikeDatastore');
  });
});

describe('Spot: which region the Spot data comes from', () => {
  const messages = (r: { reasons?: { message: string }[] }) =>
    (r.reasons ?? []).map((x) => x.message).join('\n');

  it('a region the Spot Advisor lacks: every risk reason names us-east-1, and says it stands in', () => {
    const { result } = evaluateSpot(
      { ...base, cluster: { ...CLUSTER, region: 'ap-southeast-7' } },
      SNAPSHOT_PRICES,
    );
    expect(codes(result)).toEqual(
      expect.arrayContaining([
        'SpotDataFromFallbackRegion',
        'LowInterruptionRisk',
        'ManyInstanceTypesFit',
      ]),
    );
    expect(messages(result)).toContain(
      "nothing for ap-southeast-7; the interruption bands and instance-type counts here are us-east-1's",
    );
    // No reason draws a figure from ap-southeast-7 beside one from us-east-1.
    expect(messages(result)).not.toMatch(/(types|is 10% or less|frequency) in ap-southeast-7/);
  });

  it('a region with its own data says nothing about a stand-in', () => {
    const { result } = evaluateSpot(base, SNAPSHOT_PRICES);
    expect(codes(result)).not.toContain('SpotDataFromFallbackRegion');
  });

  it('no Spot data at all: says so plainly, and gives no band or count', () => {
    const book = { ...SNAPSHOT_PRICES, spot: new Map() };
    const { result } = evaluateSpot(base, book);
    expect(codes(result)).toContain('NoSpotData');
    for (const code of ['FewInstanceTypesFit', 'ManyInstanceTypesFit', 'LowInterruptionRisk'])
      expect(codes(result)).not.toContain(code);
  });
});

describe('Spot: money and the patch decision', () => {
  it('prices the move off Spot for a workload at risk there: 3 pods back to on-demand cost 57.82/mo', () => {
    const facts = {
      ...base,
      pods: onType('m6i.xlarge', { capacityType: 'spot' }),
      template: template({ volumes: [{ name: 'h', kind: 'hostPath' }] }),
    };
    const spot = evaluateSpot(facts, SNAPSHOT_PRICES);
    expect(spot).toMatchObject({ actionable: false, atRisk: true });
    expect(spot.result).toMatchObject({
      verdict: 'NotRecommended',
      monthlySavingsUSD: '0.00',
      moveToOnDemandMonthlyCostUSD: '57.82',
    });
    expect(spot.result.reasons?.find((r) => r.code === 'AtRiskOnSpot')?.message).toMatch(
      /All 3 running pods run on Spot.*for 57\.82 USD more a month/,
    );
  });
  it('a workload at risk on Spot that is not running there yet is not at risk', () => {
    const spot = evaluateSpot(
      { ...base, template: template({ volumes: [{ name: 'h', kind: 'hostPath' }] }) },
      SNAPSHOT_PRICES,
    );
    expect(spot.atRisk).toBe(false);
    expect(spot.result.moveToOnDemandMonthlyCostUSD).toBeUndefined();
  });

  it('prices the move: 3 pods of 1 vCPU + 4 GiB on m6i.xlarge save 3 × 19.272 = 57.82/mo', () => {
    const { result, actionable } = evaluateSpot(base, SNAPSHOT_PRICES);
    expect(result.monthlySavingsUSD).toBe('57.82');
    expect(result.score).toBeGreaterThanOrEqual(60);
    expect(actionable).toBe(true);
  });

  it('counts only the pods not yet on Spot', () => {
    const pods = [
      ...onType('m6i.xlarge').slice(0, 2),
      pod('p-s', node('s', 'us-east-1c', 'm6i.xlarge', { capacityType: 'spot' })),
    ];
    expect(evaluateSpot({ ...base, pods }, SNAPSHOT_PRICES).result.monthlySavingsUSD).toBe('38.54');
  });

  it('an on-demand pin alone stays actionable: the suggested patch removes it', () => {
    const facts = {
      ...base,
      ...withTemplate({ nodeSelector: { 'karpenter.sh/capacity-type': 'on-demand' } }),
    };
    const { result, actionable } = evaluateSpot(facts, SNAPSHOT_PRICES);
    expect(result.verdict).toBe('Possible');
    expect(actionable).toBe(true);
    expect(result.reasons?.find((r) => r.code === 'OnDemandPinned')?.message).toMatch(
      /suggested patch/,
    );
  });

  it('other requirements are for a person to meet first', () => {
    const { actionable } = evaluateSpot(
      { ...base, pdb: { name: 'x', disruptionsAllowed: 0 } },
      SNAPSHOT_PRICES,
    );
    expect(actionable).toBe(false);
  });

  it('NotRecommended, NotApplicable and AlreadyOptimized save nothing', () => {
    for (const facts of [
      { ...base, ...withTemplate({ volumes: [{ name: 'h', kind: 'hostPath' as const }] }) },
      { ...base, kind: 'DaemonSet' as const },
      { ...base, pods: onType('m6i.xlarge', { capacityType: 'spot' }) },
    ]) {
      expect(evaluateSpot(facts, SNAPSHOT_PRICES).result.monthlySavingsUSD).toBe('0.00');
    }
  });

  it('orders reasons Blocks, Requires, Lowers, Raises, Info', () => {
    const facts = {
      ...base,
      pdb: { name: 'x', disruptionsAllowed: 0 },
      ...withTemplate({ volumes: [{ name: 'h', kind: 'hostPath' }], topologySpread: [] }),
    };
    const effects = (evaluateSpot(facts, SNAPSHOT_PRICES).result.reasons ?? []).map(
      (r) => r.effect,
    );
    const order = ['Blocks', 'Requires', 'Lowers', 'Raises', 'Info'];
    expect([...effects].sort((a, b) => order.indexOf(a) - order.indexOf(b))).toEqual(effects);
  });
});
