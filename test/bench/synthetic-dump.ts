/**
 * A synthetic kubectl dump for the benchmark: `workloads` Deployments, each with its
 * ReplicaSet, `podsPerWorkload` running pods spread over nodes in three zones, a Service and
 * its EndpointSlice; every second one a PodDisruptionBudget, every third one an HPA. Workloads
 * are dealt over `namespaces` namespaces, so doubling `workloads` doubles every namespace: the
 * shape that shows a per-namespace scan as well as a scan of the whole input.
 * Deterministic: the same arguments give the same objects.
 */
import type { Obj } from '../../recommender/objects/read.ts';
import { deployment, nodeObj, pod } from '../../recommender/objects/testing.ts';

const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'] as const;
/** Pods per node, roughly what an m6i.2xlarge carries. */
const PODS_PER_NODE = 30;

export function syntheticDump(workloads: number, podsPerWorkload = 10, namespaces = 20): unknown[] {
  const nodeCount = Math.max(3, Math.ceil((workloads * podsPerWorkload) / PODS_PER_NODE));
  const zoneOf = (n: number) => ZONES[n % ZONES.length] ?? 'us-east-1a';
  const objects: unknown[] = [];
  for (let n = 0; n < nodeCount; n++)
    objects.push(nodeObj(`node-${n}`, zoneOf(n), { spot: n % 5 === 0 }));
  for (let ns = 0; ns < namespaces; ns++)
    objects.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: `team-${ns}`, labels: { team: `t${ns}` } },
    });
  let nextNode = 0;
  for (let i = 0; i < workloads; i++) {
    const name = `app-${i}`;
    const ns = `team-${i % namespaces}`;
    const hash = (i * 2654435761).toString(36).slice(-6);
    const rs = `${name}-${hash}`;
    objects.push(deployment(name, ns, { replicas: podsPerWorkload }), {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: rs,
        namespace: ns,
        ownerReferences: [{ kind: 'Deployment', name, controller: true }],
      },
      spec: { replicas: podsPerWorkload },
    });
    const endpoints: Obj[] = [];
    for (let p = 0; p < podsPerWorkload; p++) {
      const node = nextNode++ % nodeCount;
      objects.push(
        pod(
          `${rs}-${p}`,
          ns,
          `node-${node}`,
          { kind: 'ReplicaSet', name: rs },
          {
            app: name,
            'pod-template-hash': hash,
          },
        ),
      );
      endpoints.push({ zone: zoneOf(node), conditions: { ready: true } });
    }
    objects.push(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: ns },
        spec: { selector: { app: name } },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${name}-slice`,
          namespace: ns,
          labels: { 'kubernetes.io/service-name': name },
        },
        endpoints,
      },
    );
    if (i % 2 === 0)
      objects.push({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name, namespace: ns },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: name } } },
      });
    if (i % 3 === 0)
      objects.push({
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name, namespace: ns },
        spec: {
          scaleTargetRef: { kind: 'Deployment', name },
          minReplicas: 2,
          maxReplicas: 20,
        },
      });
  }
  return objects;
}
