/**
 * Nodes → NodeFacts (zone, region, instance type, arch, capacity type, capacity) and the
 * ClusterFacts every workload shares: zones, architectures, capacity types and label schemes,
 * the taints of the Spot and Graviton pools, region and Kubernetes version.
 */
import {
  LABEL_ARCH,
  LABEL_EKS_CAPACITY,
  LABEL_INSTANCE_TYPE,
  LABEL_KARPENTER_CAPACITY,
  LABEL_REGION,
  LABEL_ZONE,
  type CapacityLabelScheme,
  type CapacityType,
  type ClusterFacts,
  type NodeFacts,
  type Taint,
} from '../facts.ts';
import { parseQuantity } from '../quantity.ts';
import { normalizeCapacity } from '../scheduling.ts';
import { addCount } from './counts.ts';
import { describe, obj, objs, str, type K8s } from './read.ts';

export interface NodeInfo {
  /** Shared by every pod on the node. */
  facts: NodeFacts;
  taints: Taint[];
  kubeletMinor?: number;
}

function parseTaints(v: unknown): Taint[] {
  return objs(v).flatMap((t) => {
    const k = str(t.key);
    const effect = str(t.effect);
    if (k === undefined || effect === undefined) return [];
    const taint: Taint = { key: k, effect };
    const value = str(t.value);
    if (value !== undefined && value !== '') taint.value = value;
    return [taint];
  });
}

/**
 * Whether a node is Spot or on-demand, from Karpenter's `karpenter.sh/capacity-type` (spot,
 * on-demand, reserved) or else an EKS managed node group's `eks.amazonaws.com/capacityType`
 * (SPOT, ON_DEMAND, CAPACITY_BLOCK), in any case; undefined when neither label is there. The
 * one definition of a Spot node, for the facts and for the operator's node gauges alike.
 */
export function capacityTypeOf(labels: Readonly<Record<string, string>>): CapacityType | undefined {
  const k = labels[LABEL_KARPENTER_CAPACITY] ?? labels[LABEL_EKS_CAPACITY];
  if (k === undefined) return undefined;
  return normalizeCapacity(k) === 'spot' ? 'spot' : 'on-demand';
}

function minorOf(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)/.exec(version ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export function nodeInfo(o: K8s, warnings: string[]): NodeInfo {
  const l = o.meta.labels;
  const status = obj(o.raw.status);
  const capacity = obj(status.capacity);
  const node: NodeFacts = { name: o.meta.name };
  const info: NodeInfo = { facts: node, taints: parseTaints(obj(o.raw.spec).taints) };
  const zone = l[LABEL_ZONE] ?? l['failure-domain.beta.kubernetes.io/zone'];
  const region = l[LABEL_REGION] ?? l['failure-domain.beta.kubernetes.io/region'];
  const type = l[LABEL_INSTANCE_TYPE] ?? l['beta.kubernetes.io/instance-type'];
  const arch = l[LABEL_ARCH] ?? l['beta.kubernetes.io/arch'];
  const capacityType = capacityTypeOf(l);
  if (zone !== undefined) node.zone = zone;
  if (region !== undefined) node.region = region;
  if (type !== undefined) node.instanceType = type;
  if (arch !== undefined) node.arch = arch;
  if (capacityType !== undefined) node.capacityType = capacityType;
  for (const [field, target] of [
    ['cpu', 'cpuCores'],
    ['memory', 'memoryBytes'],
  ] as const) {
    const raw = capacity[field];
    if (raw === undefined) continue;
    const q = parseQuantity(raw);
    if (q === undefined)
      warnings.push(
        `${describe(o)}: status.capacity.${field} ${JSON.stringify(raw)} is not a quantity; ignored`,
      );
    else node[target] = q;
  }
  const minor = minorOf(str(obj(status.nodeInfo).kubeletVersion));
  if (minor !== undefined) info.kubeletMinor = minor;
  return info;
}

function mostCommon(counts: ReadonlyMap<string, number>): string | undefined {
  return [...counts].sort(([a, x], [b, y]) => y - x || a.localeCompare(b))[0]?.[0];
}

/** Taints that are about node lifecycle, not about which workloads a pool takes. */
function isLifecycleTaint(t: Taint): boolean {
  return (
    t.key.startsWith('node.kubernetes.io/') ||
    t.key.startsWith('node.cloudprovider.kubernetes.io/') ||
    t.key.startsWith('karpenter.sh/') ||
    t.key === 'ToBeDeletedByClusterAutoscaler' ||
    t.effect === 'PreferNoSchedule'
  );
}

/**
 * The taints every node of a set carries (the pool's own taint), lifecycle taints left out,
 * counted as nodes come and go: each distinct taint with the number of nodes that carry it.
 */
class CommonTaints {
  private nodes = 0;
  private readonly carriers = new Map<string, { taint: Taint; nodes: number }>();

  count(taints: readonly Taint[], by: 1 | -1): void {
    this.nodes += by;
    const seen = new Set<string>();
    for (const taint of taints) {
      if (isLifecycleTaint(taint)) continue;
      const id = JSON.stringify([taint.key, taint.value ?? null, taint.effect]);
      if (seen.has(id)) continue;
      seen.add(id);
      const entry = this.carriers.get(id) ?? { taint, nodes: 0 };
      entry.nodes += by;
      if (entry.nodes === 0) this.carriers.delete(id);
      else this.carriers.set(id, entry);
    }
  }

  /** Sorted by key, effect and value (a node has one taint per key and effect). */
  list(): Taint[] {
    if (this.nodes === 0) return [];
    return [...this.carriers.values()]
      .filter((entry) => entry.nodes === this.nodes)
      .map((entry) => entry.taint)
      .sort(
        (a, b) =>
          a.key.localeCompare(b.key) ||
          a.effect.localeCompare(b.effect) ||
          (a.value ?? '').localeCompare(b.value ?? ''),
      );
  }
}

/**
 * What the cluster's facts are read from, as counts over the nodes, so that a node that comes,
 * changes or goes costs its own counts and not a new pass over every node.
 */
export class NodeTally {
  private readonly zones = new Map<string, number>();
  private readonly architectures = new Map<string, number>();
  private readonly capacityTypes = new Map<CapacityType, number>();
  private readonly regions = new Map<string, number>();
  private readonly kubeletMinors = new Map<number, number>();
  private readonly schemes = new Map<CapacityLabelScheme, number>();
  private readonly spotTaints = new CommonTaints();
  private readonly arm64Taints = new CommonTaints();

  /** Counts a node in (`by` 1) or out (-1). */
  countNode(node: NodeInfo, by: 1 | -1): void {
    const f = node.facts;
    if (f.zone !== undefined) addCount(this.zones, f.zone, by);
    if (f.arch !== undefined) addCount(this.architectures, f.arch, by);
    addCount(this.capacityTypes, f.capacityType ?? 'on-demand', by);
    if (f.region !== undefined) addCount(this.regions, f.region, by);
    if (node.kubeletMinor !== undefined) addCount(this.kubeletMinors, node.kubeletMinor, by);
    if (f.capacityType === 'spot') this.spotTaints.count(node.taints, by);
    if (f.arch === 'arm64') this.arm64Taints.count(node.taints, by);
  }

  /** Counts the capacity label schemes of a Node object's labels in or out. */
  countSchemes(labels: Readonly<Record<string, string>>, by: 1 | -1): void {
    if (labels[LABEL_KARPENTER_CAPACITY] !== undefined) addCount(this.schemes, 'karpenter', by);
    if (labels[LABEL_EKS_CAPACITY] !== undefined) addCount(this.schemes, 'eks', by);
  }

  /** `region` and `kubernetesMinor`, when given, override what the nodes say. */
  facts(options: { region?: string; kubernetesMinor?: number }): ClusterFacts {
    const cluster: ClusterFacts = {
      zones: [...this.zones.keys()].sort(),
      architectures: [...this.architectures.keys()].sort(),
      capacityTypes: [...this.capacityTypes.keys()].sort(),
      capacityLabelSchemes: [...this.schemes.keys()].sort(),
      spotNodeTaints: this.spotTaints.list(),
      arm64NodeTaints: this.arm64Taints.list(),
    };
    const region = options.region ?? mostCommon(this.regions);
    if (region !== undefined) cluster.region = region;
    // The API server is never older than its kubelets: the newest kubelet is a safe lower bound.
    const newest = this.kubeletMinors.size > 0 ? Math.max(...this.kubeletMinors.keys()) : undefined;
    const minor = options.kubernetesMinor ?? newest;
    if (minor !== undefined) cluster.kubernetesMinor = minor;
    return cluster;
  }
}

/**
 * The facts of the cluster as a whole. `nodeObjects` are the Node objects (for the capacity
 * label schemes they use); `region` and `kubernetesMinor`, when given, override what the nodes say.
 */
export function clusterFacts(
  nodeInfos: Iterable<NodeInfo>,
  nodeObjects: readonly K8s[],
  options: { region?: string; kubernetesMinor?: number },
): ClusterFacts {
  const tally = new NodeTally();
  for (const node of nodeInfos) tally.countNode(node, 1);
  for (const o of nodeObjects) tally.countSchemes(o.meta.labels, 1);
  return tally.facts(options);
}
