import { describe, expect, it } from 'vitest';
import type { Verdict } from './api/v1alpha1.ts';
import { evaluateArm64, offersArm64 } from './arm64.ts';
import type { WorkloadFacts } from './facts.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { SNAPSHOT_PRICES } from './pricing.ts';
import { CLUSTER, ZONES, codes, container, goodFacts, node, pod, template } from './testing.ts';

const base = goodFacts();
const MULTI = { platforms: ['linux/amd64', 'linux/arm64'] };
const AMD64 = { platforms: ['linux/amd64'] };
const onType = (type: string, extra: Parameters<typeof node>[3] = {}) =>
  ZONES.map((z, i) => pod(`p-${i}`, node(`n-${i}`, z, type, extra)));

/** The base workload plus an envoy sidecar and an init container, with these platforms. */
function withImages(
  init: WorkloadFacts['imagePlatforms'][string] | undefined,
  sidecar: WorkloadFacts['imagePlatforms'][string] | undefined,
  extra: Partial<WorkloadFacts> = {},
): WorkloadFacts {
  const images: Record<string, WorkloadFacts['imagePlatforms'][string]> = {
    'ghcr.io/acme/checkout:1.0': MULTI,
  };
  if (init !== undefined) images['ghcr.io/acme/migrate:2'] = init;
  if (sidecar !== undefined) images['envoyproxy/envoy:v1.34.1'] = sidecar;
  return {
    ...base,
    template: template({
      containers: [
        container('migrate', 'ghcr.io/acme/migrate:2', { role: 'init' }),
        container('envoy', 'envoyproxy/envoy:v1.34.1', { role: 'sidecar' }),
        container('checkout', 'ghcr.io/acme/checkout:1.0'),
      ],
    }),
    imagePlatforms: images,
    ...extra,
  };
}

interface Case {
  name: string;
  facts: WorkloadFacts;
  verdict: Verdict;
  has: string[];
}

const CASES: Case[] = [
  {
    name: 'every image multi-arch, on m6i',
    facts: withImages(MULTI, MULTI),
    verdict: 'Recommended',
    has: ['AllImagesMultiArch', 'GravitonCheaper'],
  },
  {
    name: 'an amd64-only init container',
    facts: withImages(AMD64, MULTI),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only'],
  },
  {
    name: 'an amd64-only sidecar',
    facts: withImages(MULTI, AMD64),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only'],
  },
  {
    name: 'an image for other platforms only',
    facts: withImages({ platforms: ['linux/amd64', 'linux/ppc64le', 'unknown/unknown'] }, MULTI),
    verdict: 'NotRecommended',
    has: ['ImageWithoutArm64'],
  },
  {
    name: 'linux/arm64/v8 counts',
    facts: withImages({ platforms: ['linux/amd64', 'linux/arm64/v8'] }, MULTI),
    verdict: 'Recommended',
    has: ['AllImagesMultiArch'],
  },
  {
    name: 'an image not looked up',
    facts: withImages(undefined, MULTI),
    verdict: 'Unknown',
    has: ['ImagePlatformsUnknown'],
  },
  {
    name: 'a registry error',
    facts: withImages({ error: 'registry: 401 Unauthorized' }, MULTI),
    verdict: 'Unknown',
    has: ['ImagePlatformsUnreadable'],
  },
  {
    name: 'a registry error never hides an amd64-only image',
    facts: withImages({ error: 'timeout' }, AMD64),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only', 'ImagePlatformsUnreadable'],
  },
  {
    name: 'pinned to amd64 by nodeSelector',
    facts: withImages(MULTI, MULTI, {
      template: {
        ...withImages(MULTI, MULTI).template,
        nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      },
    }),
    verdict: 'Possible',
    has: ['Amd64Pinned'],
  },
  {
    // Issue 12, class 4: the pin's Requires must not hide that the platforms are not known.
    name: 'pinned to amd64 with an image whose platforms are unreadable: Unknown, not Possible',
    facts: withImages({ error: 'registry: 401 Unauthorized' }, MULTI, {
      template: {
        ...withImages(MULTI, MULTI).template,
        nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      },
    }),
    verdict: 'Unknown',
    has: ['Amd64Pinned', 'ImagePlatformsUnreadable'],
  },
  {
    name: 'pinned to amd64 with an image not looked up: Unknown',
    facts: withImages(undefined, MULTI, {
      template: {
        ...withImages(MULTI, MULTI).template,
        nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      },
    }),
    verdict: 'Unknown',
    has: ['Amd64Pinned', 'ImagePlatformsUnknown'],
  },
  {
    // Issue 12, class 4: not "All 0 images … offer linux/arm64".
    name: 'a pod template without containers: Unknown, no image claim',
    facts: { ...base, template: template({ containers: [] }), imagePlatforms: {} },
    verdict: 'Unknown',
    has: ['NoContainers'],
  },
  {
    name: 'pinned to amd64 by required affinity',
    facts: {
      ...base,
      template: template({
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
                  ],
                },
              ],
            },
          },
        },
      }),
    },
    verdict: 'Possible',
    has: ['Amd64Pinned'],
  },
  {
    name: 'an affinity allowing both architectures is no pin',
    facts: {
      ...base,
      template: template({
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64', 'arm64'] },
                  ],
                },
              ],
            },
          },
        },
      }),
    },
    verdict: 'Recommended',
    has: ['AllImagesMultiArch'],
  },
  {
    name: 'preferring amd64',
    facts: {
      ...base,
      template: template({
        affinity: {
          nodeAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 50,
                preference: {
                  matchExpressions: [
                    { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
                  ],
                },
              },
            ],
          },
        },
      }),
    },
    verdict: 'Recommended',
    has: ['PrefersAmd64'],
  },
  {
    name: 'already on arm64 nodes',
    facts: { ...base, pods: onType('m7g.xlarge', { arch: 'arm64' }) },
    verdict: 'AlreadyOptimized',
    has: ['AlreadyOnArm64'],
  },
  {
    name: 'on arm64 nodes with an amd64-only sidecar: at risk, not optimized',
    facts: withImages(MULTI, AMD64, { pods: onType('m7g.xlarge', { arch: 'arm64' }) }),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only', 'AtRiskOnArm64'],
  },
  {
    name: 'required on arm64 with an amd64-only init container: at risk',
    facts: ((f) => ({
      ...f,
      pods: [],
      template: { ...f.template, nodeSelector: { 'kubernetes.io/arch': 'arm64' } },
    }))(withImages(AMD64, MULTI)),
    verdict: 'NotRecommended',
    has: ['AtRiskOnArm64'],
  },
  {
    name: 'arm64 required, no pod running',
    facts: {
      ...base,
      pods: [],
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'arm64' } }),
    },
    verdict: 'AlreadyOptimized',
    has: ['AlreadyOnArm64'],
  },
  {
    name: 'partly on arm64',
    facts: {
      ...base,
      pods: [
        ...onType('m6i.xlarge').slice(0, 2),
        pod('a', node('a', 'us-east-1c', 'm7g.xlarge', { arch: 'arm64' })),
      ],
    },
    verdict: 'Recommended',
    has: ['PartlyOnArm64'],
  },
  {
    name: 'on arm64 with an amd64-only image (it cannot be running well)',
    facts: withImages(AMD64, MULTI, { pods: onType('m7g.xlarge', { arch: 'arm64' }) }),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only'],
  },
  {
    name: 'no Graviton equivalent for the type',
    facts: { ...base, pods: onType('p4d.24xlarge') },
    verdict: 'Unknown',
    has: ['NoGravitonEquivalent'],
  },
  {
    name: 'a cluster without arm64 nodes',
    facts: { ...base, cluster: { ...CLUSTER, architectures: ['amd64'] } },
    verdict: 'Recommended',
    has: ['NoArm64NodesYet'],
  },
  {
    name: 'arm64 turned off by the policy',
    facts: {
      ...base,
      policy: { ...DEFAULT_POLICY, arm64: { enabled: false, placement: 'Preferred' } },
    },
    verdict: 'NotApplicable',
    has: ['DisabledByPolicy'],
  },
  {
    name: 'kopek.dev/arm64: never',
    facts: { ...base, annotations: { 'kopek.dev/arm64': 'never' } },
    verdict: 'NotApplicable',
    has: ['OptedOut'],
  },
  {
    name: 'a multi-arch DaemonSet',
    facts: { ...base, kind: 'DaemonSet' },
    verdict: 'AlreadyOptimized',
    has: ['AllImagesMultiArch', 'ReadyForGraviton'],
  },
  {
    name: 'an amd64-only DaemonSet',
    facts: withImages(MULTI, AMD64, { kind: 'DaemonSet' }),
    verdict: 'NotRecommended',
    has: ['ImageAmd64Only'],
  },
  {
    name: 'a DaemonSet with an unknown image',
    facts: withImages(undefined, MULTI, { kind: 'DaemonSet' }),
    verdict: 'Unknown',
    has: ['ImagePlatformsUnknown'],
  },
];

describe('arm64: every signal', () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.verdict} (${c.has.join(', ')})`, () => {
      const { result } = evaluateArm64(c.facts, SNAPSHOT_PRICES);
      expect(result.verdict).toBe(c.verdict);
      expect(codes(result)).toEqual(expect.arrayContaining(c.has));
    });
  }
});

describe('arm64: details', () => {
  it('never claims that all 0 images offer linux/arm64', () => {
    const facts = { ...base, template: template({ containers: [] }), imagePlatforms: {} };
    const { result, actionable } = evaluateArm64(facts, SNAPSHOT_PRICES);
    expect(codes(result)).not.toContain('AllImagesMultiArch');
    expect(actionable).toBe(false);
  });

  it('names the image that blocks the move, with its container', () => {
    const { result } = evaluateArm64(withImages(AMD64, MULTI), SNAPSHOT_PRICES);
    const blocker = result.reasons?.find((r) => r.code === 'ImageAmd64Only');
    expect(blocker?.effect).toBe('Blocks');
    expect(blocker?.message).toContain('init container migrate');
    expect(blocker?.message).toContain('ghcr.io/acme/migrate:2');
  });

  it('lists every image with its platforms, init containers and sidecars included', () => {
    const facts = withImages(
      {
        platforms: ['linux/amd64', 'linux/arm64'],
        digest: 'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
      },
      { error: 'timeout' },
    );
    expect(evaluateArm64(facts, SNAPSHOT_PRICES).result.images).toEqual([
      {
        container: 'migrate',
        image: 'ghcr.io/acme/migrate:2',
        digest: 'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
        platforms: ['linux/amd64', 'linux/arm64'],
      },
      { container: 'envoy', image: 'envoyproxy/envoy:v1.34.1', error: 'timeout' },
      {
        container: 'checkout',
        image: 'ghcr.io/acme/checkout:1.0',
        platforms: ['linux/amd64', 'linux/arm64'],
      },
    ]);
  });

  it('drops a digest the API would reject', () => {
    const facts = {
      ...base,
      imagePlatforms: {
        'ghcr.io/acme/checkout:1.0': { platforms: ['linux/arm64'], digest: 'not a digest' },
      },
    };
    expect(evaluateArm64(facts, SNAPSHOT_PRICES).result.images?.[0]?.digest).toBeUndefined();
  });

  it('prices the move back to amd64: m7g.xlarge → m7i.xlarge, 3 × 7.008 = 21.02/mo more', () => {
    const facts = withImages(MULTI, AMD64, { pods: onType('m7g.xlarge', { arch: 'arm64' }) });
    const arm64 = evaluateArm64(facts, SNAPSHOT_PRICES);
    expect(arm64).toMatchObject({ actionable: false, atRisk: true });
    expect(arm64.result).toMatchObject({
      verdict: 'NotRecommended',
      monthlySavingsUSD: '0.00',
      moveToAmd64MonthlyCostUSD: '21.02',
    });
    expect(arm64.result.reasons?.find((r) => r.code === 'AtRiskOnArm64')?.message).toMatch(
      /^All 3 running pods run on arm64 nodes.*for 21\.02 USD more a month\.$/,
    );
  });

  it('prices the Graviton move: m6i.xlarge → m7g.xlarge, 3 × 5.256 = 15.77/mo', () => {
    const { result, actionable } = evaluateArm64(base, SNAPSHOT_PRICES);
    expect(result.monthlySavingsUSD).toBe('15.77');
    expect(actionable).toBe(true);
  });

  it('an amd64 pin alone stays actionable; the pin of an amd64-only DaemonSet is not the problem', () => {
    const pinned = {
      ...base,
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }),
    };
    expect(evaluateArm64(pinned, SNAPSHOT_PRICES).actionable).toBe(true);
    const agent = {
      ...base,
      kind: 'DaemonSet' as const,
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }),
      imagePlatforms: { 'ghcr.io/acme/checkout:1.0': AMD64 },
    };
    const { result } = evaluateArm64(agent, SNAPSHOT_PRICES);
    expect(codes(result)).not.toContain('Amd64Pinned');
    expect(result.reasons?.[0]?.message).toMatch(/Graviton nodes would run without this DaemonSet/);
  });

  it('does not recommend a Graviton type that is no cheaper', () => {
    const od = new Map(SNAPSHOT_PRICES.onDemand.get('us-east-1'));
    od.set('m7g.xlarge', 0.25);
    const book = { ...SNAPSHOT_PRICES, onDemand: new Map([['us-east-1', od]]) };
    const { result } = evaluateArm64(base, book);
    expect(result.verdict).toBe('NotRecommended');
    expect(codes(result)).toContain('GravitonNotCheaper');
    expect(result.monthlySavingsUSD).toBe('0.00');
  });

  it('reads platform lists', () => {
    expect(offersArm64(['linux/arm64'])).toBe(true);
    expect(offersArm64(['linux/arm64/v8'])).toBe(true);
    expect(offersArm64(['linux/arm/v7', 'linux/amd64'])).toBe(false);
    expect(offersArm64([])).toBe(false);
  });
});
