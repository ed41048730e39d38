import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { parseRunConfig, type OperatorConfig } from '../../operator/config.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { HOLD_ON_DELETE_LABEL, kwokPodStagesFlag } from '../cluster/stages.ts';
import { LocalRegistry } from '../registry/registry.ts';
import { pushImage, pushIndex } from '../registry/seed.ts';
import { scrape, startClusterForKopek, writeCalls, type MetricSample } from '../support/kopek.ts';

function container(name: string, image: string): Record<string, unknown> {
  return {
    name,
    image,
    resources: { requests: { cpu: '500m', memory: '512Mi' } },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
  };
}

function workloads(registry: string): string {
  const labels = (app: string): Record<string, unknown> => ({
    selector: { matchLabels: { app } },
    template: { metadata: { labels: { app } } },
  });
  const deployment = (
    name: string,
    replicas: number,
    podSpec: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> => {
    const base = labels(name) as { selector: unknown; template: { metadata: unknown } };
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'shop', ...extra },
      spec: { replicas, selector: base.selector, template: { ...base.template, spec: podSpec } },
    };
  };
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    deployment('web', 1, {
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      // On the on-demand pool, whatever the scheduler picks: on the fleet's Spot nodes its Spot
      // verdict below would be AlreadyOptimized. Neither verdict reads the pool's label.
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: 'karpenter.sh/nodepool', operator: 'In', values: ['general'] },
                ],
              },
            ],
          },
        },
      },
      containers: [container('web', `${registry}/shop/web:1`)],
    }),
    deployment('api', 3, {
      containers: [
        container('api', `${registry}/shop/web:1`),
        container('log-shipper', `${registry}/shop/shipper:1`),
      ],
    }),
    deployment(
      'ignored',
      2,
      { containers: [container('x', `${registry}/shop/web:1`)] },
      { annotations: { 'kopek.dev/ignore': 'true' } },
    ),
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: 'shop' },
      spec: {
        replicas: 3,
        serviceName: 'db',
        ...labels('db'),
        template: {
          metadata: { labels: { app: 'db' } },
          spec: { containers: [container('postgres', `${registry}/shop/web:1`)] },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
          },
        ],
      },
    },
    // A claim that names no StorageClass and is not bound: only the default class can say
    // where its volume will live (the test adds one later).
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'uploads', namespace: 'shop' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } },
    },
    deployment('uploads', 2, {
      containers: [container('uploads', `${registry}/shop/web:1`)],
      volumes: [{ name: 'files', persistentVolumeClaim: { claimName: 'uploads' } }],
    }),
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: 'shop' },
      spec: {
        ...labels('agent'),
        template: {
          metadata: { labels: { app: 'agent' } },
          spec: { containers: [container('agent', `${registry}/shop/web:1`)] },
        },
      },
    },
    {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'report', namespace: 'shop' },
      spec: {
        schedule: '0 3 * * *',
        jobTemplate: {
          spec: {
            backoffLimit: 3,
            template: {
              spec: {
                restartPolicy: 'OnFailure',
                containers: [container('report', `${registry}/shop/web:1`)],
              },
            },
          },
        },
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'system-thing', namespace: 'kube-system' },
      spec: {
        replicas: 1,
        ...labels('system-thing'),
        template: {
          metadata: { labels: { app: 'system-thing' } },
          spec: { containers: [container('x', `${registry}/shop/web:1`)] },
        },
      },
    },
  ];
  return objects.map((object) => stringify(object)).join('---\n');
}

describe('kopek run against a real cluster, with the chart RBAC and a real registry', () => {
  let cluster: LocalCluster;
  let registry: LocalRegistry;
  let registryDir: string;
  let stagesDir: string;
  let operator: RunningOperator;
  let config: OperatorConfig;

  const wrec = async (name: string): Promise<WorkloadRecommendation | undefined> => {
    const result = await cluster.kubectl(['get', 'wrec', name, '-n', 'shop', '-o', 'json'], {
      allowFailure: true,
    });
    return result.exitCode === 0
      ? (JSON.parse(result.stdout) as WorkloadRecommendation)
      : undefined;
  };
  const codes = (reasons: { code: string }[] | undefined): string[] =>
    (reasons ?? []).map((reason) => reason.code);

  beforeAll(async () => {
    registryDir = await mkdtemp(join(tmpdir(), 'kopek-operator-registry-'));
    registry = await LocalRegistry.start({ dir: registryDir, name: 'shop-registry' });
    const target = { url: registry.url };
    await pushIndex(
      target,
      'shop/web',
      '1',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
      'oci',
    );
    await pushImage(target, 'shop/shipper', '1', { os: 'linux', architecture: 'amd64' }, 'docker');
    await pushIndex(
      target,
      'shop/web',
      '2',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
      'oci',
    );

    // The test's pod Stages: one can hold a pod on its way out.
    stagesDir = await mkdtemp(join(tmpdir(), 'kopek-operator-stages-'));
    cluster = await startClusterForKopek({
      componentArgs: { kwok: [await kwokPodStagesFlag(stagesDir, [])] },
    });
    await cluster.kubectl(['apply', '-f', '-'], { input: workloads(registry.host) });

    const kubeconfig = await cluster.kubeconfigAsServiceAccount('kopek', 'kopek');
    config = parseRunConfig(
      [
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        '127.0.0.1:0',
        // Scraped by this test over loopback; the secure default is tested in metrics-auth.
        '--metrics-secure',
        'false',
        '--leader-election-namespace',
        'kopek',
        '--batch-interval',
        '200ms',
        '--insecure-registries',
        registry.host,
        '--log-level',
        'warn',
      ],
      {},
    );
    operator = await startOperator(config);
  });

  afterAll(async () => {
    await operator.stop();
    await cluster.stop();
    await registry.component.stop();
    await rm(registryDir, { recursive: true, force: true });
    await rm(stagesDir, { recursive: true, force: true });
  });

  it('writes a recommendation for every analysed workload, and none for ignored or system ones', async () => {
    await expect
      .poll(
        async () =>
          (await cluster.kubectl(['get', 'wrec', '-A', '-o', 'name'])).stdout
            .trim()
            .split('\n')
            .sort(),
        { timeout: 60_000, interval: 500 },
      )
      .toEqual([
        'workloadrecommendation.kopek.dev/cronjob-report',
        'workloadrecommendation.kopek.dev/daemonset-agent',
        'workloadrecommendation.kopek.dev/deployment-api',
        'workloadrecommendation.kopek.dev/deployment-uploads',
        'workloadrecommendation.kopek.dev/deployment-web',
        'workloadrecommendation.kopek.dev/statefulset-db',
      ]);
  });

  it('keeps a StatefulSet with volume claims off Spot', async () => {
    const db = await wrec('statefulset-db');
    expect(db?.status?.spot?.verdict).toBe('NotRecommended');
    expect(codes(db?.status?.spot?.reasons)).toContain('StatefulWithVolumeClaims');
  });

  it('watches StorageClasses: a default EBS class created later keeps a claim off Spot, until it goes', async () => {
    const spotReasons = async (): Promise<string[]> =>
      codes((await wrec('deployment-uploads'))?.status?.spot?.reasons);
    expect(await spotReasons()).toContain('UsesPersistentVolumeClaim');
    expect(await spotReasons()).not.toContain('ZonalVolumeClaim');

    await cluster.kubectl(['apply', '-f', '-'], {
      input: stringify({
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: {
          name: 'gp3',
          annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
        },
        provisioner: 'ebs.csi.aws.com',
        volumeBindingMode: 'WaitForFirstConsumer',
      }),
    });
    await expect.poll(spotReasons, { timeout: 30_000 }).toContain('ZonalVolumeClaim');
    const spot = (await wrec('deployment-uploads'))?.status?.spot;
    expect(spot?.verdict).toBe('NotRecommended');
    expect(spot?.reasons?.find((reason) => reason.code === 'ZonalVolumeClaim')?.message).toContain(
      'StorageClass gp3 provisions EBS volumes (ebs.csi.aws.com)',
    );

    // Only the class's own event says it is gone (the claim may have been given its name).
    await cluster.kubectl(['delete', 'storageclass', 'gp3']);
    await expect.poll(spotReasons, { timeout: 30_000 }).not.toContain('ZonalVolumeClaim');
    expect(await spotReasons()).toContain('UsesPersistentVolumeClaim');
  });

  it('does not ask a DaemonSet to move to Spot', async () => {
    expect((await wrec('daemonset-agent'))?.status?.spot?.verdict).toBe('NotApplicable');
  });

  it('reads platforms from the registry and names the amd64-only sidecar that blocks arm64', async () => {
    const api = await wrec('deployment-api');
    const arm64 = api?.status?.arm64;
    expect(arm64?.verdict).toBe('NotRecommended');
    expect(arm64?.reasons?.find((reason) => reason.code === 'ImageAmd64Only')?.message).toContain(
      'log-shipper',
    );
    expect(arm64?.images).toContainEqual(
      expect.objectContaining({ container: 'api', platforms: ['linux/amd64', 'linux/arm64/v8'] }),
    );
  });

  it('owns each recommendation by its workload, without blockOwnerDeletion', async () => {
    const owner = (await wrec('deployment-api'))?.metadata.ownerReferences?.[0];
    expect(owner).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' });
    expect(owner?.blockOwnerDeletion).toBeUndefined();
  });

  it('explains why a single pinned replica is not ready for Spot or arm64 yet', async () => {
    const status = (await wrec('deployment-web'))?.status;
    expect(status?.spot?.verdict).toBe('NotRecommended');
    expect(codes(status?.spot?.reasons)).toContain('SingleReplica');
    expect(status?.arm64?.verdict).toBe('Possible');
    expect(codes(status?.arm64?.reasons)).toContain('Amd64Pinned');
    expect(status?.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'True' });
  });

  it('follows changes to workloads within seconds', async () => {
    await cluster.kubectl(['scale', 'deployment/web', '-n', 'shop', '--replicas=3']);
    await expect
      .poll(async () => (await wrec('deployment-web'))?.status?.spot?.verdict, { timeout: 30_000 })
      .toBe('Recommended');
    expect(codes((await wrec('deployment-web'))?.status?.spot?.reasons)).toContain(
      'EnoughReplicas',
    );

    await cluster.kubectl([
      'create',
      'poddisruptionbudget',
      'api',
      '-n',
      'shop',
      '--selector=app=api',
      '--max-unavailable=1',
    ]);
    await expect
      .poll(async () => codes((await wrec('deployment-api'))?.status?.spot?.reasons), {
        timeout: 30_000,
      })
      .toContain('PodDisruptionBudgetAllows');

    await cluster.kubectl([
      'patch',
      'deployment/web',
      '-n',
      'shop',
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]',
    ]);
    await expect
      .poll(async () => (await wrec('deployment-web'))?.status?.arm64?.verdict, { timeout: 30_000 })
      .toBe('Recommended');
  });

  it('removes the recommendation itself when its workload becomes ignored, and keeps it away', async () => {
    // The workload still exists, so the garbage collector does nothing here: only kopek's own
    // delete removes the recommendation.
    await cluster.kubectl(['annotate', 'cronjob/report', '-n', 'shop', 'kopek.dev/ignore=true']);
    await expect
      .poll(async () => await wrec('cronjob-report'), { timeout: 30_000 })
      .toBeUndefined();
    expect(
      await cluster.kubectl(['get', 'cronjob/report', '-n', 'shop', '-o', 'name']),
    ).toMatchObject({ stdout: 'cronjob.batch/report\n' });
    await cluster.kubectl(['delete', 'cronjob/report', '-n', 'shop']);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await wrec('cronjob-report')).toBeUndefined();
  });

  it('shows a SavingsPolicy the workloads it governs and their totals', async () => {
    await cluster.kubectl(['apply', '-f', '-'], {
      input: stringify({
        apiVersion: 'kopek.dev/v1alpha1',
        kind: 'SavingsPolicy',
        metadata: { name: 'shop' },
        spec: {
          priority: 10,
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
        },
      }),
    });
    await expect
      .poll(
        async () =>
          JSON.parse(
            (await cluster.kubectl(['get', 'savingspolicy', 'shop', '-o', 'json'])).stdout,
          ) as { status?: { matchedWorkloads?: number; topWorkloads?: unknown[] } },
        { timeout: 30_000 },
      )
      .toMatchObject({
        status: {
          matchedWorkloads: 5,
          topWorkloads: expect.arrayContaining([
            expect.objectContaining({ name: 'api' }),
          ]) as unknown,
        },
      });
    await expect
      .poll(async () => (await wrec('deployment-api'))?.status?.policy, { timeout: 30_000 })
      .toBe('shop');
  });

  it('marks arm64 Unknown while the registry is down, and recovers when it returns', async () => {
    await registry.component.stop();
    await cluster.kubectl([
      'set',
      'image',
      'deployment/web',
      '-n',
      'shop',
      `web=${registry.host}/shop/web:2`,
    ]);
    await expect
      .poll(async () => (await wrec('deployment-web'))?.status?.arm64?.verdict, { timeout: 30_000 })
      .toBe('Unknown');
    const unreadable = (await wrec('deployment-web'))?.status?.arm64?.reasons?.find(
      (reason) => reason.code === 'ImagePlatformsUnreadable',
    );
    expect(unreadable?.message).toContain('unreachable');
    await registry.restart();
    await expect
      .poll(async () => (await wrec('deployment-web'))?.status?.arm64?.verdict, {
        timeout: 90_000,
        interval: 1000,
      })
      .toBe('Recommended');
  }, 150_000);

  it('makes no write calls while nothing changes (60 s)', async () => {
    // Let the changes above settle, then count.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const before = await writeCalls(operator.metricsUrl);
    // The counter counts: the five recommendations above were each created and given a status,
    // and some were updated since.
    expect(before).toBeGreaterThanOrEqual(10);
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    expect(await writeCalls(operator.metricsUrl)).toBe(before);
  }, 90_000);

  it('rides out a 10 s API server outage without restarting and reflects later changes', async () => {
    // 10 s is past the 10 s renew deadline: kopek stops working, keeps its caches, and
    // takes the lease again when the API server is back.
    const sample = async (name: string): Promise<MetricSample[]> =>
      (await scrape(operator.metricsUrl)).filter((s) => s.name === name);
    const podsCached = async (): Promise<number | undefined> =>
      (await sample('kopek_cache_objects')).find((s) => s.labels.resource === 'pods')?.value;
    const cachedBefore = await podsCached();
    expect(cachedBefore).toBeGreaterThan(0);
    await cluster.stopComponent('kube-apiserver');
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await cluster.startComponent('kube-apiserver');
    await cluster.kubectl(['scale', 'deployment/api', '-n', 'shop', '--replicas=5']);
    await expect
      .poll(async () => (await wrec('deployment-api'))?.status?.placement?.replicas, {
        timeout: 60_000,
        interval: 1000,
      })
      .toBe(5);
    // It lost the lease during the outage and holds it again, under the same identity.
    const lease = JSON.parse(
      (await cluster.kubectl(['get', 'lease', 'kopek', '-n', 'kopek', '-o', 'json'])).stdout,
    ) as { spec: { holderIdentity?: string; leaseTransitions?: number } };
    expect(lease.spec.holderIdentity).toBe(config.identity);
    expect((await sample('leader_election_master_status'))[0]?.value).toBe(1);
    // The caches were kept: no initial list again (only relists to catch up), never emptied.
    const initialLists = (await sample('kopek_cache_relists_total')).filter(
      (s) => s.labels.reason === 'initial',
    );
    expect(initialLists.every((s) => s.value === 1)).toBe(true);
    expect(await podsCached()).toBeGreaterThanOrEqual(cachedBefore ?? 1);
    const outcome = await Promise.race([
      operator.done,
      new Promise((resolve) =>
        setTimeout(() => {
          resolve('running');
        }, 100),
      ),
    ]);
    expect(outcome).toBe('running');
  });

  it("keeps a Deployment's old ReplicaSet cached while its last pod is on its way out, then leaves it out", async () => {
    const replicaSetsCached = async (): Promise<number | undefined> =>
      (await scrape(operator.metricsUrl)).find(
        (s) => s.name === 'kopek_cache_objects' && s.labels.resource === 'replicasets',
      )?.value;
    const replicaSets = async (): Promise<
      { spec: { replicas: number }; status: { replicas?: number; terminatingReplicas?: number } }[]
    > =>
      (
        JSON.parse(
          (await cluster.kubectl(['get', 'rs', '-n', 'shop', '-l', 'app=drain', '-o', 'json']))
            .stdout,
        ) as {
          items: {
            spec: { replicas: number };
            status: { replicas?: number; terminatingReplicas?: number };
          }[];
        }
      ).items;
    const before = await replicaSetsCached();
    const drain = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'drain', namespace: 'shop' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'drain' } },
        template: {
          metadata: { labels: { app: 'drain', [HOLD_ON_DELETE_LABEL]: 'true' } },
          spec: { containers: [container('drain', `${registry.host}/shop/web:1`)] },
        },
      },
    };
    // Whatever happens below, nothing of it stays: a held pod goes only when deleted at once.
    onTestFinished(async () => {
      await cluster.kubectl(
        ['delete', 'pods', '-n', 'shop', '-l', 'app=drain', '--grace-period=0', '--force'],
        { allowFailure: true },
      );
      await cluster.kubectl(['delete', 'deployment/drain', '-n', 'shop', '--wait=true'], {
        allowFailure: true,
      });
    });
    await cluster.kubectl(['apply', '-f', '-'], { input: stringify(drain) });
    await cluster.kubectl(['rollout', 'status', 'deployment/drain', '-n', 'shop', '--timeout=60s']);
    await expect.poll(replicaSetsCached, { timeout: 30_000 }).toBe((before ?? 0) + 1);
    const [held] = (
      await cluster.kubectl(['get', 'pods', '-n', 'shop', '-l', 'app=drain', '-o', 'name'])
    ).stdout
      .trim()
      .split('\n');
    // A new revision, whose pods are not held: the old ReplicaSet goes to zero and its pod is held
    // on its way out.
    await cluster.kubectl([
      'patch',
      'deployment/drain',
      '-n',
      'shop',
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { template: { metadata: { labels: { [HOLD_ON_DELETE_LABEL]: null } } } },
      }),
    ]);
    await cluster.kubectl(['rollout', 'status', 'deployment/drain', '-n', 'shop', '--timeout=60s']);
    // The ReplicaSet controller no longer counts it as running, but as terminating (1.35).
    await expect
      .poll(
        async () =>
          (await replicaSets())
            .filter((rs) => rs.spec.replicas === 0)
            .map((rs) => [rs.status.replicas ?? 0, rs.status.terminatingReplicas]),
        { timeout: 30_000 },
      )
      .toEqual([[0, 1]]);
    await expect.poll(replicaSetsCached, { timeout: 30_000 }).toBe((before ?? 0) + 2);
    // Still kept a moment later: not a cache that had yet to see the old ReplicaSet at zero.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await replicaSetsCached()).toBe((before ?? 0) + 2);
    await cluster.kubectl(['delete', held ?? '', '-n', 'shop', '--grace-period=0', '--force']);
    await expect.poll(replicaSetsCached, { timeout: 30_000 }).toBe((before ?? 0) + 1);
    expect((await replicaSets()).length).toBe(2);
  });
});
