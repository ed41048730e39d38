/**
 * Property tests (fast-check) over arbitrary workloads: the guarantees of issue #3 hold for any
 * facts, not just the tables.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { WorkloadKind } from './api/v1alpha1.ts';
import type {
  ContainerFacts,
  ImagePlatformsFact,
  NodeFacts,
  ServiceFacts,
  VolumeFacts,
  WorkloadFacts,
} from './facts.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { SNAPSHOT_PRICES } from './pricing.ts';
import { recommend } from './recommend.ts';
import { estimateCost } from './savings.ts';
import { CLUSTER, GiB, omit, schemaProblems } from './testing.ts';

const RUNS = { numRuns: 300 };
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const TYPES = [
  'm6i.xlarge',
  'm6i.2xlarge',
  'c6i.2xlarge',
  'r6i.large',
  't3.medium',
  'm5.large',
  'm7g.xlarge',
  'c7g.xlarge',
  'p4d.24xlarge',
  'x9z.large',
];
const IMAGES = ['app:1', 'sidecar:2', 'init:3', 'tool:4'];

const platformsArb: fc.Arbitrary<ImagePlatformsFact | undefined> = fc.constantFrom<
  ImagePlatformsFact | undefined
>(
  { platforms: ['linux/amd64', 'linux/arm64'] },
  { platforms: ['linux/amd64', 'linux/arm64/v8', 'unknown/unknown'] },
  { platforms: ['linux/amd64'] },
  { error: 'registry: 503' },
  undefined,
);

const nodeArb: fc.Arbitrary<NodeFacts> = fc
  .record({
    i: fc.integer({ min: 0, max: 5 }),
    zone: fc.constantFrom(...ZONES),
    type: fc.constantFrom(...TYPES),
    spot: fc.boolean(),
    labelled: fc.boolean(),
  })
  .map(({ i, zone, type, spot, labelled }) => {
    const n: NodeFacts = {
      name: `node-${i}-${zone}`,
      zone,
      region: 'us-east-1',
      arch: /^[a-z]+\dg/.test(type) ? 'arm64' : 'amd64',
    };
    if (labelled) n.instanceType = type;
    if (spot) n.capacityType = 'spot';
    else n.capacityType = 'on-demand';
    return n;
  });

const containerArb: fc.Arbitrary<ContainerFacts> = fc.record({
  name: fc.constantFrom('app', 'envoy', 'init', 'tool'),
  image: fc.constantFrom(...IMAGES),
  role: fc.constantFrom<ContainerFacts['role']>('main', 'init', 'sidecar'),
  cpuRequestCores: fc.double({ min: 0, max: 16, noNaN: true }),
  memoryRequestBytes: fc.integer({ min: 0, max: 64 }).map((g) => g * GiB),
  readinessProbe: fc.boolean(),
  preStopSleepSeconds: fc.integer({ min: 0, max: 200 }),
});

const volumeArb: fc.Arbitrary<VolumeFacts> = fc.record({
  name: fc.constantFrom('data', 'cache', 'tmp'),
  kind: fc.constantFrom<VolumeFacts['kind']>('emptyDir', 'persistentVolumeClaim', 'other'),
});

const serviceArb: fc.Arbitrary<ServiceFacts> = fc
  .record({
    name: fc.constantFrom('svc-a', 'svc-b'),
    headless: fc.boolean(),
    endpoints: fc.tuple(fc.nat(4), fc.nat(4), fc.nat(4)),
    clients: fc.tuple(fc.nat(20), fc.nat(20), fc.nat(20)),
    distribution: fc.constantFrom<string | undefined>(undefined, undefined, 'PreferClose'),
    measuredGB: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
  })
  .map((s) => {
    const out: ServiceFacts = {
      name: s.name,
      headless: s.headless,
      readyEndpointsPerZone: Object.fromEntries(
        ZONES.map((z, i) => [z, s.endpoints[i] ?? 0] as const).filter(([, n]) => n > 0),
      ),
      clientWeightsByZone: Object.fromEntries(ZONES.map((z, i) => [z, s.clients[i] ?? 0])),
    };
    if (s.distribution !== undefined) out.trafficDistribution = s.distribution;
    if (s.measuredGB !== undefined) out.measuredCrossZoneBytesPerMonth = s.measuredGB * GiB;
    return out;
  });

const factsArb: fc.Arbitrary<WorkloadFacts> = fc
  .record({
    kind: fc.constantFrom<WorkloadKind>(
      'Deployment',
      'StatefulSet',
      'DaemonSet',
      'ReplicaSet',
      'Job',
      'CronJob',
      'Rollout',
    ),
    replicas: fc.integer({ min: 0, max: 10 }),
    hpaMin: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
    containers: fc.array(containerArb, { minLength: 1, maxLength: 4 }),
    volumes: fc.array(volumeArb, { maxLength: 2 }),
    claims: fc.boolean(),
    grace: fc.option(fc.integer({ min: 0, max: 600 }), { nil: undefined }),
    pods: fc.array(
      fc.tuple(
        nodeArb,
        fc.double({ min: 0, max: 8, noNaN: true }),
        fc.integer({ min: 0, max: 32 }),
      ),
      { maxLength: 8 },
    ),
    pdb: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
    platforms: fc.tuple(platformsArb, platformsArb, platformsArb, platformsArb),
    services: fc.array(serviceArb, { maxLength: 2 }),
    minReplicas: fc.integer({ min: 1, max: 4 }),
    maxGrace: fc.integer({ min: 10, max: 300 }),
    region: fc.constantFrom<string | undefined>('us-east-1', 'eu-west-1', 'ap-south-1', undefined),
    spread: fc.boolean(),
    backoff: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
    minor: fc.constantFrom<number | undefined>(undefined, 29, 33, 35),
  })
  .map((r) => {
    const imagePlatforms: Record<string, ImagePlatformsFact> = {};
    IMAGES.forEach((image, i) => {
      const p = r.platforms[i];
      if (p !== undefined) imagePlatforms[image] = p;
    });
    const facts: WorkloadFacts = {
      kind: r.kind,
      name: 'w',
      namespace: 'ns',
      labels: {},
      annotations: {},
      selector: { app: 'w' },
      replicas: r.replicas,
      template: {
        labels: { app: 'w' },
        annotations: {},
        containers: r.containers,
        volumes: r.volumes,
        volumeClaimTemplates: r.kind === 'StatefulSet' && r.claims ? ['data'] : [],
        nodeSelector: {},
        tolerations: [],
        topologySpread: r.spread
          ? [
              {
                topologyKey: 'topology.kubernetes.io/zone',
                maxSkew: 1,
                whenUnsatisfiable: 'ScheduleAnyway',
              },
            ]
          : [],
        ...(r.grace === undefined ? {} : { terminationGracePeriodSeconds: r.grace }),
      },
      pods: r.pods.map(([node, cpu, mem], i) => ({
        name: `p-${i}`,
        node,
        ready: true,
        cpuRequestCores: cpu,
        memoryRequestBytes: mem * GiB,
      })),
      imagePlatforms,
      services: r.services,
      cluster: {
        ...CLUSTER,
        ...(r.region === undefined ? { region: undefined } : { region: r.region }),
        kubernetesMinor: r.minor,
      } as typeof CLUSTER,
      policy: {
        ...DEFAULT_POLICY,
        spot: {
          ...DEFAULT_POLICY.spot,
          minReplicas: r.minReplicas,
          maxTerminationGracePeriodSeconds: r.maxGrace,
        },
      },
    };
    if (r.hpaMin !== undefined) facts.hpa = { name: 'hpa', minReplicas: r.hpaMin, maxReplicas: 10 };
    if (r.pdb !== undefined) facts.pdb = { name: 'pdb', disruptionsAllowed: r.pdb };
    if (r.backoff !== undefined) facts.job = { backoffLimit: r.backoff };
    return facts;
  });

const usd = (s: string | undefined) => Number(s ?? '0');

describe('properties', () => {
  it('every status satisfies the CRD schema', () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        expect(schemaProblems(recommend(facts))).toEqual([]);
      }),
      RUNS,
    );
  });

  it('savings are never negative', () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        const s = recommend(facts);
        for (const v of [
          s.potentialMonthlySavingsUSD,
          s.spot?.monthlySavingsUSD,
          s.arm64?.monthlySavingsUSD,
          s.crossZone?.monthlySavingsUSD,
        ]) {
          expect(usd(v)).toBeGreaterThanOrEqual(0);
        }
      }),
      RUNS,
    );
  });

  it('combined savings never exceed the cost', () => {
    fc.assert(
      fc.property(factsArb, fc.boolean(), fc.boolean(), (facts, spot, arm64) => {
        const est = estimateCost(facts, SNAPSHOT_PRICES, { spot, arm64 });
        expect(est.savingsMonthly).toBeLessThanOrEqual(est.currentMonthly);
        expect(est.targetMonthly).toBeGreaterThanOrEqual(0);
        const s = recommend(facts);
        expect(usd(s.spot?.monthlySavingsUSD)).toBeLessThanOrEqual(usd(s.monthlyCostUSD));
        expect(usd(s.arm64?.monthlySavingsUSD)).toBeLessThanOrEqual(usd(s.monthlyCostUSD));
        // Compute savings are bounded by the compute cost; cross-zone savings by the traffic bill.
        const crossZone = usd(s.crossZone?.monthlyCostUSD);
        expect(usd(s.potentialMonthlySavingsUSD)).toBeLessThanOrEqual(
          usd(s.monthlyCostUSD) + crossZone + 0.01,
        );
        if (crossZone === 0)
          expect(usd(s.potentialMonthlySavingsUSD)).toBeLessThanOrEqual(usd(s.monthlyCostUSD));
      }),
      RUNS,
    );
  });

  it('an amd64-only image in any container, init containers included, never gives arm64 Recommended', () => {
    fc.assert(
      fc.property(factsArb, fc.nat(3), (facts, i) => {
        const containers = [...facts.template.containers];
        const victim = containers[i % containers.length];
        if (victim === undefined) return;
        containers[i % containers.length] = {
          ...victim,
          image: 'legacy:amd64',
          role: i % 2 === 0 ? 'init' : victim.role,
        };
        const f = {
          ...facts,
          template: { ...facts.template, containers },
          imagePlatforms: {
            ...facts.imagePlatforms,
            'legacy:amd64': { platforms: ['linux/amd64'] },
          },
        };
        const arm64 = recommend(f).arm64;
        expect(arm64?.verdict).not.toBe('Recommended');
        if (facts.policy.arm64.enabled)
          expect(arm64?.reasons?.map((r) => r.code)).toContain('ImageAmd64Only');
      }),
      RUNS,
    );
  });

  it('a StatefulSet with volume claims is never Spot Recommended', () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        const f: WorkloadFacts = {
          ...facts,
          kind: 'StatefulSet',
          template: { ...facts.template, volumeClaimTemplates: ['data'] },
        };
        const spot = recommend(f).spot;
        expect(spot?.verdict).not.toBe('Recommended');
        expect(spot?.verdict).not.toBe('Possible');
      }),
      RUNS,
    );
  });

  /** Things that stand in the way of a move, each with how to add it to a workload. */
  const BLOCKERS: Record<
    string,
    { on: 'spot' | 'arm64'; add: (f: WorkloadFacts) => WorkloadFacts }
  > = {
    hostPath: {
      on: 'spot',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          volumes: [...f.template.volumes, { name: 'host', kind: 'hostPath' }],
        },
      }),
    },
    localVolume: {
      on: 'spot',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          volumes: [...f.template.volumes, { name: 'nvme', kind: 'local', claimName: 'nvme' }],
        },
      }),
    },
    doNotDisrupt: {
      on: 'spot',
      add: (f) => ({
        ...f,
        annotations: { ...f.annotations, 'karpenter.sh/do-not-disrupt': 'true' },
      }),
    },
    notSafeToEvict: {
      on: 'spot',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          annotations: {
            ...f.template.annotations,
            'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false',
          },
        },
      }),
    },
    systemCritical: {
      on: 'spot',
      add: (f) => ({
        ...f,
        template: { ...f.template, priorityClassName: 'system-cluster-critical' },
      }),
    },
    // Down to one replica (a workload scaled to zero stays so: that is not a blocker).
    singleReplica: {
      on: 'spot',
      add: (f) =>
        (f.hpa?.minReplicas ?? f.replicas) >= 1 ? { ...omit(f, 'hpa'), replicas: 1 } : f,
    },
    strictPdb: { on: 'spot', add: (f) => ({ ...f, pdb: { name: 'pdb', disruptionsAllowed: 0 } }) },
    longGrace: {
      on: 'spot',
      add: (f) => ({ ...f, template: { ...f.template, terminationGracePeriodSeconds: 3600 } }),
    },
    onDemandPin: {
      on: 'spot',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          nodeSelector: { ...f.template.nodeSelector, 'karpenter.sh/capacity-type': 'on-demand' },
        },
      }),
    },
    noRetries: { on: 'spot', add: (f) => ({ ...f, job: { ...f.job, backoffLimit: 0 } }) },
    amd64Image: {
      on: 'arm64',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          containers: [
            ...f.template.containers,
            { name: 'legacy', image: 'legacy:amd64', role: 'init', readinessProbe: false },
          ],
        },
        imagePlatforms: { ...f.imagePlatforms, 'legacy:amd64': { platforms: ['linux/amd64'] } },
      }),
    },
    amd64Pin: {
      on: 'arm64',
      add: (f) => ({
        ...f,
        template: {
          ...f.template,
          nodeSelector: { ...f.template.nodeSelector, 'kubernetes.io/arch': 'amd64' },
        },
      }),
    },
  };
  const names = Object.keys(BLOCKERS);

  it('removing a blocker never lowers a score', () => {
    fc.assert(
      fc.property(
        factsArb,
        fc.subarray(names, { minLength: 1 }),
        fc.nat(),
        (facts, present, pick) => {
          const removed = present[pick % present.length] ?? '';
          const blocker = BLOCKERS[removed];
          if (blocker === undefined) return;
          const apply = (list: readonly string[]) =>
            list.reduce((f, n) => BLOCKERS[n]?.add(f) ?? f, facts);
          const before = recommend(apply(present))[blocker.on]?.score ?? 0;
          const after =
            recommend(apply(present.filter((n) => n !== removed)))[blocker.on]?.score ?? 0;
          expect(after, `removing ${removed} from ${present.join(', ')}`).toBeGreaterThanOrEqual(
            before,
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('the same facts always give the same status', () => {
    fc.assert(
      fc.property(factsArb, (facts) => {
        expect(JSON.stringify(recommend(facts))).toBe(
          JSON.stringify(recommend(structuredClone(facts))),
        );
      }),
      { numRuns: 100 },
    );
  });
});
