import { describe, expect, it } from 'vitest';
import { apportion, DEFAULT_FLEET, fleetNodes, scaledFleet, type Fleet } from './fleet.ts';

describe('fleetNodes', () => {
  it('labels nodes the way Karpenter and EKS managed node groups do', () => {
    const fleet: Fleet = {
      region: 'us-east-1',
      pools: [
        {
          name: 'spot',
          instanceType: 'c7g.large',
          arch: 'arm64',
          capacityType: 'spot',
          provisioner: 'karpenter',
          zones: ['us-east-1a', 'us-east-1b'],
          count: 3,
          cpu: '1930m',
          memory: '3Gi',
          taints: [{ key: 'spot', effect: 'NoSchedule' }],
        },
        {
          name: 'ng',
          instanceType: 'm6i.large',
          arch: 'amd64',
          capacityType: 'on-demand',
          provisioner: 'eks-managed-nodegroup',
          zones: ['us-east-1c'],
          count: 1,
          cpu: '1930m',
          memory: '7Gi',
        },
      ],
    };
    const nodes = fleetNodes(fleet);
    expect(
      nodes.map((node) => [
        node.metadata.name,
        node.metadata.labels['topology.kubernetes.io/zone'],
      ]),
    ).toEqual([
      ['spot-a-0', 'us-east-1a'],
      ['spot-b-0', 'us-east-1b'],
      ['spot-a-1', 'us-east-1a'],
      ['ng-c-0', 'us-east-1c'],
    ]);
    expect(nodes[0]?.metadata.labels).toMatchObject({
      'karpenter.sh/capacity-type': 'spot',
      'kubernetes.io/arch': 'arm64',
      'node.kubernetes.io/instance-type': 'c7g.large',
      'topology.kubernetes.io/region': 'us-east-1',
    });
    expect(nodes[0]?.spec.taints).toEqual([{ key: 'spot', effect: 'NoSchedule' }]);
    expect(nodes[3]?.metadata.labels).toMatchObject({
      'eks.amazonaws.com/capacityType': 'ON_DEMAND',
      'eks.amazonaws.com/nodegroup': 'ng',
    });
    expect(nodes[3]?.metadata.labels['karpenter.sh/capacity-type']).toBeUndefined();
    expect(nodes[3]?.status.allocatable).toMatchObject({ cpu: '1930m', memory: '7Gi' });
    expect(new Set(nodes.map((node) => node.spec.providerID)).size).toBe(4);
  });

  it('describes at least 24 nodes over three zones in the default fleet, with Spot and arm64', () => {
    const nodes = fleetNodes(DEFAULT_FLEET);
    expect(nodes.length).toBeGreaterThanOrEqual(24);
    expect(
      new Set(nodes.map((node) => node.metadata.labels['topology.kubernetes.io/zone'])).size,
    ).toBe(3);
    expect(
      new Set(nodes.map((node) => node.metadata.labels['node.kubernetes.io/instance-type'])).size,
    ).toBeGreaterThanOrEqual(5);
    expect(nodes.some((node) => node.metadata.labels['kubernetes.io/arch'] === 'arm64')).toBe(true);
    expect(new Set(nodes.map((node) => node.metadata.name)).size).toBe(nodes.length);
  });

  it('refuses a pool without zones', () => {
    expect(() =>
      fleetNodes({
        region: 'us-east-1',
        pools: [
          {
            name: 'x',
            instanceType: 'm5.large',
            arch: 'amd64',
            capacityType: 'spot',
            provisioner: 'karpenter',
            zones: [],
            count: 1,
            cpu: '2',
            memory: '8Gi',
          },
        ],
      }),
    ).toThrow('node pool x has no zones');
  });
});

describe('scaledFleet', () => {
  it("keeps the default fleet's mix at 2,000 nodes, with exactly 2,000 nodes", () => {
    const fleet = scaledFleet(2000);
    const nodes = fleetNodes(fleet);
    expect(nodes).toHaveLength(2000);
    expect(new Set(nodes.map((node) => node.metadata.name)).size).toBe(2000);
    const defaultTotal = DEFAULT_FLEET.pools.reduce((sum, pool) => sum + pool.count, 0);
    for (const pool of DEFAULT_FLEET.pools) {
      const scaled = fleet.pools.find((p) => p.name === pool.name);
      expect(scaled?.count).toBeCloseTo((pool.count * 2000) / defaultTotal, -0.5);
      const { zones, ...rest } = pool;
      expect(scaled).toMatchObject({ ...rest, count: scaled?.count });
      expect([...(scaled?.zones ?? [])].sort()).toEqual(zones);
    }
    const share = (label: string, value: string): number =>
      nodes.filter((node) => node.metadata.labels[label] === value).length / nodes.length;
    expect(share('kubernetes.io/arch', 'arm64')).toBeCloseTo(0.25, 2);
    for (const zone of ['us-east-1a', 'us-east-1b', 'us-east-1c'])
      expect(share('topology.kubernetes.io/zone', zone)).toBeCloseTo(1 / 3, 1);
  });

  it('rounds by largest remainder and drops pools left without nodes', () => {
    // Shares of 5 nodes: general 1.25, the six pools of 3 nodes 0.625 each. general keeps its
    // one node; the remainders (0.625 beats 0.25) give the other four, first pools first.
    expect(scaledFleet(5).pools.map((pool) => [pool.name, pool.count])).toEqual([
      ['general', 1],
      ['general-spot', 1],
      ['compute', 1],
      ['graviton', 1],
      ['graviton-spot', 1],
    ]);
  });

  it('spreads even a fleet of a few nodes over every zone', () => {
    const zones = fleetNodes(scaledFleet(6)).map(
      (node) => node.metadata.labels['topology.kubernetes.io/zone'],
    );
    expect(new Set(zones).size).toBe(3);
  });

  it('refuses a size that is not a whole number of nodes', () => {
    expect(() => scaledFleet(0)).toThrow('a fleet needs a whole number of nodes ≥ 1, got 0');
    expect(() => scaledFleet(2.5)).toThrow('got 2.5');
  });
});

describe('apportion', () => {
  it('apportions a total exactly, by largest remainder', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0.5, 0.25, 0.25])).toEqual([3, 2, 2]);
    expect(apportion(0, [1, 2])).toEqual([0, 0]);
  });
});
