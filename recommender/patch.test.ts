import { describe, expect, it } from 'vitest';
import type { WorkloadFacts } from './facts.ts';
import { suggestPatch } from './patch.ts';
import { DEFAULT_POLICY } from './policy.ts';
import { CLUSTER, goodFacts, node, pod, template } from './testing.ts';

const base = goodFacts();
const SPOT_KARPENTER = { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['spot'] };
const SPOT_EKS = { key: 'eks.amazonaws.com/capacityType', operator: 'In', values: ['SPOT'] };
const ARM64 = { key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] };
/** goodFacts' pods run on amd64 in a cluster that also has arm64 nodes: a Spot move keeps amd64. */
const KEEP_AMD64 = { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] };
const TOLERATE_KARPENTER_SPOT = {
  key: 'karpenter.sh/capacity-type',
  operator: 'Equal',
  value: 'spot',
  effect: 'NoSchedule',
};
const TOLERATE_EKS_SPOT = {
  key: 'eks.amazonaws.com/capacityType',
  operator: 'Equal',
  value: 'SPOT',
  effect: 'NoSchedule',
};
const TOLERATE_ARM64 = {
  key: 'kubernetes.io/arch',
  operator: 'Equal',
  value: 'arm64',
  effect: 'NoSchedule',
};

function withPolicy(
  spot: 'Preferred' | 'Required',
  arm64: 'Preferred' | 'Required',
): Partial<WorkloadFacts> {
  return {
    policy: {
      ...DEFAULT_POLICY,
      spot: { ...DEFAULT_POLICY.spot, placement: spot },
      arm64: { ...DEFAULT_POLICY.arm64, placement: arm64 },
    },
  };
}

describe('suggested patches', () => {
  it('nothing to change → no patch', () => {
    expect(suggestPatch(base, {})).toBeUndefined();
  });

  it('Spot, preferred, on a Karpenter cluster', () => {
    expect(suggestPatch(base, { spot: true })).toEqual({
      podTemplate: {
        spec: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [KEEP_AMD64] }],
              },
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, preference: { matchExpressions: [SPOT_KARPENTER] } },
              ],
            },
          },
          tolerations: [TOLERATE_KARPENTER_SPOT],
        },
      },
    });
  });

  it('Spot, required, on a cluster with Karpenter and EKS managed node groups: one term per label scheme', () => {
    const facts = {
      ...base,
      ...withPolicy('Required', 'Preferred'),
      cluster: { ...CLUSTER, capacityLabelSchemes: ['eks', 'karpenter'] as const },
    };
    expect(suggestPatch(facts, { spot: true })?.podTemplate).toEqual({
      spec: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [SPOT_EKS, KEEP_AMD64] },
                { matchExpressions: [SPOT_KARPENTER, KEEP_AMD64] },
              ],
            },
          },
        },
        tolerations: [TOLERATE_EKS_SPOT, TOLERATE_KARPENTER_SPOT],
      },
    });
  });

  it("removes an on-demand pin and keeps the template's own constraints and tolerations", () => {
    const facts = {
      ...base,
      ...withPolicy('Required', 'Preferred'),
      template: template({
        nodeSelector: { 'karpenter.sh/capacity-type': 'on-demand', team: 'shop' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'shop', effect: 'NoSchedule' }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    {
                      key: 'node.kubernetes.io/instance-type',
                      operator: 'In',
                      values: ['m6i.xlarge', 'm7i.xlarge'],
                    },
                  ],
                },
              ],
            },
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 20,
                preference: {
                  matchExpressions: [
                    { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['on-demand'] },
                  ],
                },
              },
              {
                weight: 10,
                preference: {
                  matchExpressions: [
                    { key: 'topology.kubernetes.io/zone', operator: 'In', values: ['us-east-1a'] },
                  ],
                },
              },
            ],
          },
        },
      }),
    };
    expect(suggestPatch(facts, { spot: true })?.podTemplate).toEqual({
      spec: {
        nodeSelector: { 'karpenter.sh/capacity-type': null },
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    {
                      key: 'node.kubernetes.io/instance-type',
                      operator: 'In',
                      values: ['m6i.xlarge', 'm7i.xlarge'],
                    },
                    SPOT_KARPENTER,
                    KEEP_AMD64,
                  ],
                },
              ],
            },
            preferredDuringSchedulingIgnoredDuringExecution: [
              {
                weight: 10,
                preference: {
                  matchExpressions: [
                    { key: 'topology.kubernetes.io/zone', operator: 'In', values: ['us-east-1a'] },
                  ],
                },
              },
            ],
          },
        },
        tolerations: [
          { key: 'dedicated', operator: 'Equal', value: 'shop', effect: 'NoSchedule' },
          TOLERATE_KARPENTER_SPOT,
        ],
      },
    });
  });

  it.each([
    ['pods on amd64, arm64 nodes in the cluster: pins amd64', ['amd64'], ['amd64', 'arm64'], true],
    ['pods on both: nothing to pin', ['amd64', 'arm64'], ['amd64', 'arm64'], false],
    ['an amd64-only cluster: nothing to pin', ['amd64'], ['amd64'], false],
  ] as const)('Spot without arm64 keeps the architectures: %s', (_, running, cluster, pinned) => {
    const facts = {
      ...base,
      pods: running.map((arch, i) =>
        pod(`p${i}`, node(`n${i}`, 'us-east-1a', 'm6i.xlarge', { arch })),
      ),
      cluster: { ...CLUSTER, architectures: cluster },
    };
    const required = JSON.stringify(
      suggestPatch(facts, { spot: true })?.podTemplate ?? {},
    ).includes('"kubernetes.io/arch"');
    expect(required).toBe(pinned);
    // With arm64 applied too there is no pin to keep: arm64 is the target.
    expect(JSON.stringify(suggestPatch(facts, { spot: true, arm64: true }))).not.toContain(
      '"values":["amd64"]',
    );
  });

  it('Spot without arm64 adds no pin when the template already constrains the architecture', () => {
    const facts = {
      ...base,
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }),
    };
    expect(JSON.stringify(suggestPatch(facts, { spot: true }))).not.toContain('"values":["amd64"]');
  });

  it('arm64, preferred: removes the amd64 pin and prefers arm64', () => {
    const facts = {
      ...base,
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'amd64' } }),
    };
    expect(suggestPatch(facts, { arm64: true })?.podTemplate).toEqual({
      spec: {
        nodeSelector: { 'kubernetes.io/arch': null },
        affinity: {
          nodeAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 100, preference: { matchExpressions: [ARM64] } },
            ],
          },
        },
        tolerations: [TOLERATE_ARM64],
      },
    });
  });

  it('arm64, required: selects arm64 nodes; an amd64-only required term goes', () => {
    const facts = {
      ...base,
      ...withPolicy('Preferred', 'Required'),
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
    };
    expect(suggestPatch(facts, { arm64: true })?.podTemplate).toEqual({
      spec: {
        nodeSelector: { 'kubernetes.io/arch': 'arm64' },
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: null } },
        tolerations: [TOLERATE_ARM64],
      },
    });
  });

  it("both at once, with the taints the cluster's Spot and arm64 nodes carry", () => {
    const facts = {
      ...base,
      cluster: {
        ...CLUSTER,
        spotNodeTaints: [{ key: 'spot', value: 'true', effect: 'NoSchedule' }],
        arm64NodeTaints: [{ key: 'kubernetes.io/arch', value: 'arm64', effect: 'NoSchedule' }],
      },
    };
    const spec = suggestPatch(facts, { spot: true, arm64: true })?.podTemplate?.spec as Record<
      string,
      unknown
    >;
    expect(spec.tolerations).toEqual([
      TOLERATE_KARPENTER_SPOT,
      { key: 'spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' },
      TOLERATE_ARM64,
    ]);
    expect(spec.affinity).toEqual({
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, preference: { matchExpressions: [SPOT_KARPENTER] } },
          { weight: 100, preference: { matchExpressions: [ARM64] } },
        ],
      },
    });
  });

  it('cross-zone: a zone spread on the pod template and the Service patch', () => {
    const patch = suggestPatch(
      { ...base, template: template({ topologySpread: [] }) },
      {
        crossZone: {
          spreadOverZones: true,
          services: [
            { name: 'checkout', patch: { spec: { trafficDistribution: 'PreferSameZone' } } },
          ],
        },
      },
    );
    expect(patch).toEqual({
      podTemplate: {
        spec: {
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'topology.kubernetes.io/zone',
              whenUnsatisfiable: 'ScheduleAnyway',
              labelSelector: { matchLabels: { app: 'checkout' } },
            },
          ],
        },
      },
      services: [{ name: 'checkout', patch: { spec: { trafficDistribution: 'PreferSameZone' } } }],
    });
  });

  it('is deterministic', () => {
    expect(JSON.stringify(suggestPatch(base, { spot: true, arm64: true }))).toBe(
      JSON.stringify(suggestPatch(goodFacts(), { spot: true, arm64: true })),
    );
  });
});
