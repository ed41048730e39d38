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

function mostCommon(values: readonly (string | undefined)[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
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

/** Taints every node of a set carries (the pool's own taint), lifecycle taints left out. */
function commonTaints(nodes: readonly NodeInfo[]): Taint[] {
  const first = nodes[0];
  if (first === undefined) return [];
  const same = (a: Taint, b: Taint) =>
    a.key === b.key && a.value === b.value && a.effect === b.effect;
  return first.taints
    .filter((t) => !isLifecycleTaint(t) && nodes.every((n) => n.taints.some((x) => same(x, t))))
    .sort((a, b) => a.key.localeCompare(b.key) || a.effect.localeCompare(b.effect));
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
  const nodes = [...nodeInfos].sort((a, b) => a.facts.name.localeCompare(b.facts.name));
  const schemes = new Set<CapacityLabelScheme>();
  for (const o of nodeObjects) {
    if (o.meta.labels[LABEL_KARPENTER_CAPACITY] !== undefined) schemes.add('karpenter');
    if (o.meta.labels[LABEL_EKS_CAPACITY] !== undefined) schemes.add('eks');
  }
  const cluster: ClusterFacts = {
    zones: [...new Set(nodes.map((n) => n.facts.zone).filter((z) => z !== undefined))].sort(),
    architectures: [
      ...new Set(nodes.map((n) => n.facts.arch).filter((a) => a !== undefined)),
    ].sort(),
    capacityTypes: [...new Set(nodes.map((n) => n.facts.capacityType ?? 'on-demand'))].sort(),
    capacityLabelSchemes: [...schemes].sort(),
    spotNodeTaints: commonTaints(nodes.filter((n) => n.facts.capacityType === 'spot')),
    arm64NodeTaints: commonTaints(nodes.filter((n) => n.facts.arch === 'arm64')),
  };
  const region = options.region ?? mostCommon(nodes.map((n) => n.facts.region));
  if (region !== undefined) cluster.region = region;
  const minors = nodes.map((n) => n.kubeletMinor).filter((m) => m !== undefined);
  // The API server is never older than its kubelets: the newest kubelet is a safe lower bound.
  const minor = options.kubernetesMinor ?? (minors.length > 0 ? Math.max(...minors) : undefined);
  if (minor !== undefined) cluster.kubernetesMinor = minor;
  return cluster;
}
