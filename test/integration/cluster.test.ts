import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import { LocalCluster } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';

interface PodList {
  items: { metadata: { name: string }; spec: { nodeName?: string }; status: { phase?: string } }[];
}
interface NodeList {
  items: { metadata: { name: string; labels: Record<string, string> } }[];
}

function deployment(
  name: string,
  replicas: number,
  podSpecExtra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'nginx:1.27',
              resources: { requests: { cpu: '100m', memory: '64Mi' } },
            },
          ],
          ...podSpecExtra,
        },
      },
    },
  });
}

describe('local control plane', () => {
  let cluster: LocalCluster;
  let archByNode: Map<string, string>;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    await cluster.addFleet(DEFAULT_FLEET);
    const nodes = JSON.parse(
      (await cluster.kubectl(['get', 'nodes', '-o', 'json'])).stdout,
    ) as NodeList;
    archByNode = new Map(
      nodes.items.map((node) => [
        node.metadata.name,
        node.metadata.labels['kubernetes.io/arch'] ?? '',
      ]),
    );
  });

  afterAll(async () => {
    await cluster.stop();
  });

  async function runningPods(app: string): Promise<PodList['items']> {
    const out = await cluster.kubectl([
      'get',
      'pods',
      '-n',
      'default',
      '-l',
      `app=${app}`,
      '-o',
      'json',
    ]);
    return (JSON.parse(out.stdout) as PodList).items;
  }

  it('reports the pinned Kubernetes version to clients', async () => {
    const { stdout } = await cluster.kubectl(['version', '-o', 'json']);
    const version = JSON.parse(stdout) as { serverVersion: { gitVersion: string; minor: string } };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.3[4-9]\.\d+$/);
  });

  it('labels the fleet like EKS nodes', async () => {
    const nodes = JSON.parse(
      (await cluster.kubectl(['get', 'nodes', '-o', 'json'])).stdout,
    ) as NodeList;
    expect(nodes.items).toHaveLength(24);
    const zones = new Set(
      nodes.items.map((node) => node.metadata.labels['topology.kubernetes.io/zone']),
    );
    expect([...zones].sort()).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
    const spot = nodes.items.filter(
      (node) =>
        node.metadata.labels['karpenter.sh/capacity-type'] === 'spot' ||
        node.metadata.labels['eks.amazonaws.com/capacityType'] === 'SPOT',
    );
    expect(spot.length).toBe(9);
    expect([...archByNode.values()].filter((arch) => arch === 'arm64')).toHaveLength(6);
  });

  it('schedules a Deployment of 3 replicas onto KWOK nodes and runs its pods', async () => {
    await cluster.kubectl(['apply', '-f', '-'], { input: deployment('web', 3) });
    await cluster.kubectl([
      'rollout',
      'status',
      'deployment/web',
      '-n',
      'default',
      '--timeout=90s',
    ]);
    const pods = await runningPods('web');
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.status.phase).toBe('Running');
      expect(archByNode.has(pod.spec.nodeName ?? '')).toBe(true);
    }
  });

  it('places pods with an arm64 node affinity only on arm64 nodes', async () => {
    const affinity = {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: 'kubernetes.io/arch', operator: 'In', values: ['arm64'] },
                ],
              },
            ],
          },
        },
      },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: deployment('graviton-web', 6, affinity) });
    await cluster.kubectl([
      'rollout',
      'status',
      'deployment/graviton-web',
      '-n',
      'default',
      '--timeout=90s',
    ]);
    const pods = await runningPods('graviton-web');
    expect(pods).toHaveLength(6);
    for (const pod of pods) expect(archByNode.get(pod.spec.nodeName ?? '')).toBe('arm64');
  });

  it('garbage-collects ReplicaSets and pods when their Deployment is deleted', async () => {
    await cluster.kubectl(['delete', 'deployment/web', '-n', 'default', '--cascade=background']);
    await expect
      .poll(async () => (await runningPods('web')).length, { timeout: 60_000, interval: 500 })
      .toBe(0);
    const replicaSets = await cluster.kubectl([
      'get',
      'replicasets',
      '-n',
      'default',
      '-l',
      'app=web',
      '-o',
      'name',
    ]);
    expect(replicaSets.stdout.trim()).toBe('');
  });

  it('refuses a ServiceAccount without RBAC and allows it once a ClusterRole is bound', async () => {
    await cluster.kubectl(['create', 'namespace', 'rbac-check']);
    await cluster.kubectl(['create', 'serviceaccount', 'reader', '-n', 'rbac-check']);
    const kubeconfig = await cluster.kubeconfigAsServiceAccount('rbac-check', 'reader');
    const asReader = cluster
      .kubeConfig('system:serviceaccount:rbac-check:reader')
      .makeApiClient(CoreV1Api);

    await expect(asReader.listNamespacedPod({ namespace: 'default' })).rejects.toMatchObject({
      code: 403,
    });
    const denied = await cluster.kubectl(
      ['--kubeconfig', kubeconfig, 'get', 'pods', '-n', 'default'],
      { allowFailure: true },
    );
    expect(denied.exitCode).not.toBe(0);
    expect(denied.stderr).toContain(
      '"system:serviceaccount:rbac-check:reader" cannot list resource "pods"',
    );

    await cluster.kubectl([
      'create',
      'clusterrole',
      'pod-reader',
      '--verb=get,list,watch',
      '--resource=pods',
    ]);
    await cluster.kubectl([
      'create',
      'clusterrolebinding',
      'reader-pods',
      '--clusterrole=pod-reader',
      '--serviceaccount=rbac-check:reader',
    ]);
    await expect
      .poll(async () => (await asReader.listNamespacedPod({ namespace: 'default' })).items.length, {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    const allowed = await cluster.kubectl([
      '--kubeconfig',
      kubeconfig,
      'get',
      'pods',
      '-n',
      'default',
      '-o',
      'name',
    ]);
    expect(allowed.stdout).toContain('pod/graviton-web-');
  });

  it('issues ServiceAccount tokens the API server accepts', async () => {
    const token = (
      await cluster.kubectl(['create', 'token', 'reader', '-n', 'rbac-check'])
    ).stdout.trim();
    // Only the token authenticates: no kubeconfig, so no admin client certificate.
    const whoami = await cluster.kubectl([
      '--kubeconfig=/dev/null',
      `--server=${cluster.server}`,
      `--certificate-authority=${cluster.pki.caCert}`,
      `--token=${token}`,
      'auth',
      'whoami',
      '-o',
      'json',
    ]);
    const review = JSON.parse(whoami.stdout) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    expect(review.status.userInfo.username).toBe('system:serviceaccount:rbac-check:reader');
    expect(review.status.userInfo.groups).toContain('system:serviceaccounts:rbac-check');
  });

  it('survives an API server restart with its data intact', async () => {
    await cluster.stopComponent('kube-apiserver');
    const down = await cluster.kubectl(['get', 'nodes', '--request-timeout=2s'], {
      allowFailure: true,
    });
    expect(down.exitCode).not.toBe(0);
    await cluster.startComponent('kube-apiserver');
    const pods = await runningPods('graviton-web');
    expect(pods).toHaveLength(6);
  });
});

describe('two local control planes at once', () => {
  it('run side by side on their own ports and directories', async () => {
    const [first, second] = await Promise.all([LocalCluster.start(), LocalCluster.start()]);
    try {
      expect(first.server).not.toBe(second.server);
      expect(first.dir).not.toBe(second.dir);
      await first.kubectl(['create', 'namespace', 'only-in-first']);
      const inSecond = await second.kubectl(['get', 'namespace', 'only-in-first'], {
        allowFailure: true,
      });
      expect(inSecond.stderr).toContain('NotFound');
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });
});
