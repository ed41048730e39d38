import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { capacityTypeOf } from './nodes.ts';
import { deployment, NODES, nodeObj } from './testing.ts';

describe('nodes and the cluster', () => {
  it('reads the cluster: region, zones, architectures, capacity labels, pool taints, version', () => {
    const cluster = factsFromObjects([
      ...NODES,
      nodeObj('n-d', 'us-east-1a', { eks: true, kubelet: 'v1.34.2' }),
      deployment('web'),
    ]).facts[0]?.cluster;
    expect(cluster).toEqual({
      region: 'us-east-1',
      zones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
      architectures: ['amd64', 'arm64'],
      capacityTypes: ['on-demand', 'spot'],
      capacityLabelSchemes: ['eks', 'karpenter'],
      spotNodeTaints: [],
      arm64NodeTaints: [{ key: 'kubernetes.io/arch', value: 'arm64', effect: 'NoSchedule' }],
      kubernetesMinor: 34,
    });
    expect(
      factsFromObjects([...NODES, deployment('web')], { region: 'eu-west-1', kubernetesMinor: 30 })
        .facts[0]?.cluster,
    ).toMatchObject({ region: 'eu-west-1', kubernetesMinor: 30 });
  });
});

describe('capacityTypeOf', () => {
  const K = 'karpenter.sh/capacity-type';
  const E = 'eks.amazonaws.com/capacityType';
  it.each<[Record<string, string>, string | undefined]>([
    [{ [K]: 'spot' }, 'spot'],
    [{ [K]: 'on-demand' }, 'on-demand'],
    [{ [K]: 'reserved' }, 'on-demand'],
    [{ [E]: 'SPOT' }, 'spot'],
    [{ [E]: 'spot' }, 'spot'],
    [{ [E]: 'ON_DEMAND' }, 'on-demand'],
    [{ [E]: 'CAPACITY_BLOCK' }, 'on-demand'],
    // Karpenter's label is the one it schedules by; it wins over a node group's.
    [{ [K]: 'on-demand', [E]: 'SPOT' }, 'on-demand'],
    [{ [K]: 'spot', [E]: 'ON_DEMAND' }, 'spot'],
    [{ 'kubernetes.io/arch': 'arm64' }, undefined],
  ])('%j → %s', (labels, want) => {
    expect(capacityTypeOf(labels)).toBe(want);
  });
});
