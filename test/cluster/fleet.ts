/**
 * Declarative description of an EKS-like fleet of KWOK nodes: each pool is a group of nodes of
 * one instance type, architecture and capacity type, spread round-robin over its zones, labelled
 * the way Karpenter or EKS managed node groups label real nodes.
 */

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface NodePool {
  name: string;
  instanceType: string;
  arch: 'amd64' | 'arm64';
  capacityType: 'on-demand' | 'spot';
  /** Karpenter labels `karpenter.sh/capacity-type`; EKS managed node groups label `eks.amazonaws.com/capacityType`. */
  provisioner: 'karpenter' | 'eks-managed-nodegroup';
  zones: string[];
  count: number;
  /** Allocatable CPU and memory as Kubernetes quantities, e.g. "3920m", "14Gi". */
  cpu: string;
  memory: string;
  pods?: number;
  taints?: Taint[];
  labels?: Record<string, string>;
}

export interface Fleet {
  region: string;
  pools: NodePool[];
}

/** Marks a node as KWOK's to simulate; KWOK is started with the matching selector. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];

/** 24 nodes over three zones: on-demand and Spot, amd64 and arm64, five instance families. */
export const DEFAULT_FLEET: Fleet = {
  region: 'us-east-1',
  pools: [
    {
      name: 'general',
      instanceType: 'm6i.xlarge',
      arch: 'amd64',
      capacityType: 'on-demand',
      provisioner: 'karpenter',
      zones: ZONES,
      count: 6,
      cpu: '3920m',
      memory: '14Gi',
    },
    {
      name: 'general-spot',
      instanceType: 'm5.xlarge',
      arch: 'amd64',
      capacityType: 'spot',
      provisioner: 'karpenter',
      zones: ZONES,
      count: 3,
      cpu: '3920m',
      memory: '14Gi',
    },
    {
      name: 'compute',
      instanceType: 'c6i.2xlarge',
      arch: 'amd64',
      capacityType: 'on-demand',
      provisioner: 'eks-managed-nodegroup',
      zones: ZONES,
      count: 3,
      cpu: '7910m',
      memory: '14Gi',
    },
    {
      name: 'graviton',
      instanceType: 'm7g.xlarge',
      arch: 'arm64',
      capacityType: 'on-demand',
      provisioner: 'karpenter',
      zones: ZONES,
      count: 3,
      cpu: '3920m',
      memory: '14Gi',
    },
    {
      name: 'graviton-spot',
      instanceType: 'c7g.xlarge',
      arch: 'arm64',
      capacityType: 'spot',
      provisioner: 'karpenter',
      zones: ZONES,
      count: 3,
      cpu: '3920m',
      memory: '6Gi',
    },
    {
      name: 'batch-spot',
      instanceType: 'm5.2xlarge',
      arch: 'amd64',
      capacityType: 'spot',
      provisioner: 'eks-managed-nodegroup',
      zones: ZONES,
      count: 3,
      cpu: '7910m',
      memory: '29Gi',
    },
    {
      name: 'data',
      instanceType: 'r6i.2xlarge',
      arch: 'amd64',
      capacityType: 'on-demand',
      provisioner: 'eks-managed-nodegroup',
      zones: ZONES,
      count: 3,
      cpu: '7910m',
      memory: '58Gi',
      taints: [{ key: 'dedicated', value: 'data', effect: 'NoSchedule' }],
      labels: { dedicated: 'data' },
    },
  ],
};

/** Splits `total` into integer parts proportional to `weights` (largest remainder first). */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const shares = weights.map((w) => (sum > 0 ? (w * total) / sum : 0));
  const parts = shares.map(Math.floor);
  let left = total - parts.reduce((a, b) => a + b, 0);
  const order = shares
    .map((share, index) => ({ index, remainder: share - Math.floor(share) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of order) {
    if (left <= 0) break;
    parts[index] = (parts[index] ?? 0) + 1;
    left--;
  }
  return parts;
}

/**
 * The same mix as `base` (zones, families, Spot/on-demand, amd64/arm64, tainted pools) at
 * `nodes` nodes: every pool keeps its share, rounded by largest remainder so the counts add
 * up exactly. For benchmarks at thousands of nodes.
 */
export function scaledFleet(nodes: number, base: Fleet = DEFAULT_FLEET): Fleet {
  if (!Number.isInteger(nodes) || nodes < 1)
    throw new Error(`a fleet needs a whole number of nodes ≥ 1, got ${nodes}`);
  const counts = apportion(
    nodes,
    base.pools.map((pool) => pool.count),
  );
  return {
    region: base.region,
    pools: base.pools
      // Each pool starts in the next zone, so that a small fleet still spans every zone.
      .map((pool, index) => {
        const shift = index % Math.max(1, pool.zones.length);
        const zones = [...pool.zones.slice(shift), ...pool.zones.slice(0, shift)];
        return { ...pool, zones, count: counts[index] ?? 0 };
      })
      .filter((pool) => pool.count > 0),
  };
}

/** A Node object KWOK will manage, in the shape `kubectl apply` accepts. */
export interface NodeManifest {
  apiVersion: 'v1';
  kind: 'Node';
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: { providerID: string; taints?: Taint[] };
  status: {
    allocatable: Record<string, string>;
    capacity: Record<string, string>;
    nodeInfo: Record<string, string>;
  };
}

/** The Node objects a fleet describes, named `<pool>-<zone letter>-<index>`. */
export function fleetNodes(fleet: Fleet): NodeManifest[] {
  const nodes: NodeManifest[] = [];
  for (const pool of fleet.pools) {
    if (pool.zones.length === 0) throw new Error(`node pool ${pool.name} has no zones`);
    for (let index = 0; index < pool.count; index++) {
      const zone = pool.zones[index % pool.zones.length] ?? '';
      const name = `${pool.name}-${zone.slice(-1)}-${Math.floor(index / pool.zones.length)}`;
      const capacityLabels: Record<string, string> =
        pool.provisioner === 'karpenter'
          ? { 'karpenter.sh/capacity-type': pool.capacityType, 'karpenter.sh/nodepool': pool.name }
          : {
              'eks.amazonaws.com/capacityType': pool.capacityType === 'spot' ? 'SPOT' : 'ON_DEMAND',
              'eks.amazonaws.com/nodegroup': pool.name,
            };
      const resources = {
        cpu: pool.cpu,
        memory: pool.memory,
        pods: String(pool.pods ?? 58),
        'ephemeral-storage': '80Gi',
      };
      nodes.push({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name,
          annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
          labels: {
            'kubernetes.io/hostname': name,
            'kubernetes.io/os': 'linux',
            'kubernetes.io/arch': pool.arch,
            'node.kubernetes.io/instance-type': pool.instanceType,
            'topology.kubernetes.io/region': fleet.region,
            'topology.kubernetes.io/zone': zone,
            type: 'kwok',
            ...capacityLabels,
            ...pool.labels,
          },
        },
        spec: {
          providerID: `aws:///${zone}/i-${(nodes.length + 1).toString(16).padStart(17, '0')}`,
          ...(pool.taints ? { taints: pool.taints } : {}),
        },
        status: {
          allocatable: resources,
          capacity: resources,
          nodeInfo: {
            architecture: pool.arch,
            operatingSystem: 'linux',
            kubeletVersion: 'fake',
            kubeProxyVersion: 'fake',
          },
        },
      });
    }
  }
  return nodes;
}
