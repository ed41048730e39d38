/**
 * Test vocabulary for the object readers: raw Kubernetes objects as `kubectl get -o yaml`
 * prints them. Used by the unit tests of facts-from-objects and the benchmark only.
 */
import type { Obj } from './read.ts';

/** A Node as kubectl prints it: zone, region, instance type, arch, capacity type, capacity. */
export function nodeObj(
  name: string,
  zone: string,
  extra: {
    type?: string;
    arch?: string;
    spot?: boolean;
    eks?: boolean;
    taints?: Obj[];
    kubelet?: string;
  } = {},
): Obj {
  const labels: Record<string, string> = {
    'topology.kubernetes.io/zone': zone,
    'topology.kubernetes.io/region': 'us-east-1',
    'node.kubernetes.io/instance-type': extra.type ?? 'm6i.xlarge',
    'kubernetes.io/arch': extra.arch ?? 'amd64',
  };
  if (extra.eks === true)
    labels['eks.amazonaws.com/capacityType'] = extra.spot === true ? 'SPOT' : 'ON_DEMAND';
  else labels['karpenter.sh/capacity-type'] = extra.spot === true ? 'spot' : 'on-demand';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: extra.taints === undefined ? {} : { taints: extra.taints },
    status: {
      capacity: { cpu: '4', memory: '16Gi' },
      nodeInfo: { kubeletVersion: extra.kubelet ?? 'v1.33.1-eks-1' },
    },
  };
}

/** A pod spec with one ready-probed container requesting 500m and 1Gi. */
export const podSpec = (extra: Obj = {}): Obj => ({
  containers: [
    {
      name: 'app',
      image: 'nginx:1.27',
      resources: { requests: { cpu: '500m', memory: '1Gi' } },
      readinessProbe: { httpGet: { path: '/', port: 80 } },
    },
  ],
  ...extra,
});

/** A Deployment selecting `app: <name>`. */
export function deployment(
  name: string,
  ns = 'shop',
  extra: { annotations?: Record<string, string>; replicas?: number; spec?: Obj } = {},
): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: ns,
      uid: `uid-${name}`,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: {
      replicas: extra.replicas ?? 3,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: podSpec(extra.spec) },
    },
  };
}

/** A running, ready pod on `node`, controlled by `owner`. */
export function pod(
  name: string,
  ns: string,
  node: string,
  owner: { kind: string; name: string },
  labels: Record<string, string> = {},
  spec: Obj = {},
): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: 'x', controller: true },
      ],
    },
    spec: { ...podSpec(spec), nodeName: node },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** Three nodes: on-demand amd64 in a, Spot amd64 in b, a tainted Graviton node in c. */
export const NODES = [
  nodeObj('n-a', 'us-east-1a'),
  nodeObj('n-b', 'us-east-1b', { spot: true }),
  nodeObj('n-c', 'us-east-1c', {
    type: 'm7g.xlarge',
    arch: 'arm64',
    taints: [{ key: 'kubernetes.io/arch', value: 'arm64', effect: 'NoSchedule' }],
  }),
];
