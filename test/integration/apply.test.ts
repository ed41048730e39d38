/**
 * Apply mode against a real kube-apiserver, controller-manager and scheduler with KWOK nodes (the
 * default EKS-like fleet): kopek runs as its ServiceAccount with the chart's RBAC for
 * apply.enabled. KWOK makes scheduled pods Ready, so a Spot move lands and settles for real;
 * "no Spot capacity" is the Spot nodes cordoned, so the scheduler leaves the new pods Pending.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AppliedChange } from '../../recommender/api/v1alpha1.ts';
import { parseRunConfig } from '../../operator/config.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import type { LocalCluster } from '../cluster/cluster.ts';
import { scrape, startClusterForKopek } from '../support/kopek.ts';

type Obj = Record<string, unknown>;

let cluster: LocalCluster;
let operator: RunningOperator;

function deployment(namespace: string, name: string): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          // A pin to on-demand amd64 capacity: the recommendation removes the capacity pin.
          nodeSelector: { 'karpenter.sh/capacity-type': 'on-demand' },
          containers: [
            {
              name,
              image: `registry.invalid/${name}:1`,
              resources: { requests: { cpu: '100m', memory: '128Mi' } },
              readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
            },
          ],
        },
      },
    },
  };
}

/** Workloads whose change must be reverted, all at once. */
const REVERTED = Array.from({ length: 20 }, (_, i) => `api-${i}`);
const WORKLOADS: [string, string][] = [
  ['shop', 'web'],
  ['waiting', 'idle'],
  ...REVERTED.map((name): [string, string] => ['nospot', name]),
];

function isSpot(labels: Record<string, string>): boolean {
  return (
    labels['karpenter.sh/capacity-type'] === 'spot' ||
    labels['eks.amazonaws.com/capacityType'] === 'SPOT'
  );
}

function policy(name: string, namespace: string, placement: string, maxConcurrent = 1): Obj {
  return {
    apiVersion: 'kopek.dev/v1alpha1',
    kind: 'SavingsPolicy',
    metadata: { name },
    spec: {
      mode: 'Apply',
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
      spot: { placement },
      apply: { actions: ['Spot'], progressTimeout: '60s', cooldown: '1h', maxConcurrent },
    },
  };
}

async function kubectlJson<T>(args: string[]): Promise<T> {
  return JSON.parse((await cluster.kubectl([...args, '-o', 'json'])).stdout) as T;
}

async function applied(namespace: string, name: string): Promise<AppliedChange | undefined> {
  const wrec = await kubectlJson<{ status?: { applied?: AppliedChange } }>([
    'get',
    'wrec',
    `deployment-${name}`,
    '-n',
    namespace,
  ]);
  return wrec.status?.applied;
}

async function until<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  ms = 240_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    let value: T | undefined;
    try {
      value = await read();
    } catch {
      value = undefined;
    }
    if (value !== undefined && done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function podTemplate(namespace: string, name: string): Promise<Obj> {
  const d = await kubectlJson<{ spec: { template: Obj } }>([
    'get',
    'deployment',
    name,
    '-n',
    namespace,
  ]);
  return d.spec.template;
}

async function approve(namespace: string, name: string): Promise<void> {
  await cluster.kubectl([
    'patch',
    'wrec',
    `deployment-${name}`,
    '-n',
    namespace,
    '--type=merge',
    '-p',
    '{"spec":{"approve":["Spot"]}}',
  ]);
}

async function patchCalls(): Promise<number> {
  return (await scrape(operator.metricsUrl))
    .filter(
      (s) =>
        s.name === 'kopek_kube_requests_total' &&
        s.labels.verb === 'patch' &&
        s.labels.resource === 'deployments',
    )
    .reduce((sum, s) => sum + s.value, 0);
}

async function waitForRecommendation(namespace: string, name: string): Promise<void> {
  await until(
    `the Spot verdict of ${namespace}/${name}`,
    () =>
      kubectlJson<{ status?: { spot?: { verdict?: string } } }>([
        'get',
        'wrec',
        `deployment-${name}`,
        '-n',
        namespace,
      ]),
    (w) => w.status?.spot?.verdict === 'Possible' || w.status?.spot?.verdict === 'Recommended',
  );
}

beforeAll(async () => {
  cluster = await startClusterForKopek({ apply: true });
  const objects: Obj[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nospot' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'waiting' } },
    policy('shop', 'shop', 'Preferred'),
    policy('nospot', 'nospot', 'Required', REVERTED.length),
    policy('waiting', 'waiting', 'Preferred'),
    deployment('shop', 'web'),
    ...REVERTED.map((name) => deployment('nospot', name)),
    deployment('waiting', 'idle'),
  ];
  await cluster.kubectl(['apply', '-f', '-'], {
    input: objects.map((o) => stringify(o)).join('---\n'),
  });
  for (const [ns, name] of WORKLOADS)
    await cluster.kubectl(['rollout', 'status', `deployment/${name}`, '-n', ns, '--timeout=180s']);
  const kubeconfig = await cluster.kubeconfigAsServiceAccount('kopek', 'kopek');
  const config = parseRunConfig(
    [
      '--kubeconfig',
      kubeconfig,
      '--metrics-bind-address',
      '127.0.0.1:0',
      '--metrics-secure=false',
      '--leader-election-namespace',
      'kopek',
      '--batch-interval',
      '200ms',
      '--log-level',
      'warn',
      '--enable-apply',
      'true',
      '--apply-settle-period',
      '10s',
    ],
    {},
  );
  operator = await startOperator(config);
  for (const [ns, name] of WORKLOADS) await waitForRecommendation(ns, name);
}, 600_000);

afterAll(async () => {
  await operator.stop();
  await cluster.stop();
});

describe('Apply mode on a real control plane', () => {
  it('moves an approved Deployment to Spot nodes, Succeeded, realized savings exported', async () => {
    await approve('shop', 'web');
    const done = await until(
      'Succeeded',
      () => applied('shop', 'web'),
      (a) => a?.outcome === 'Succeeded' || a?.outcome === 'Failed' || a?.outcome === 'RolledBack',
    );
    expect(done?.outcome).toBe('Succeeded');
    const pods = await kubectlJson<{ items: { spec: { nodeName?: string } }[] }>([
      'get',
      'pods',
      '-n',
      'shop',
      '-l',
      'app=web',
      '--field-selector=status.phase=Running',
    ]);
    const nodes = await kubectlJson<{
      items: { metadata: { name: string; labels: Record<string, string> } }[];
    }>(['get', 'nodes']);
    const spot = new Set(
      nodes.items
        .filter(
          (n) =>
            n.metadata.labels['karpenter.sh/capacity-type'] === 'spot' ||
            n.metadata.labels['eks.amazonaws.com/capacityType'] === 'SPOT',
        )
        .map((n) => n.metadata.name),
    );
    expect(pods.items.length).toBe(3);
    expect(pods.items.every((p) => spot.has(p.spec.nodeName ?? ''))).toBe(true);
    const realized = (await scrape(operator.metricsUrl)).filter(
      (s) => s.name === 'kopek_workload_realized_monthly_savings_usd' && s.labels.name === 'web',
    );
    expect(realized).toEqual([
      expect.objectContaining({
        labels: { namespace: 'shop', kind: 'Deployment', name: 'web', optimization: 'Spot' },
      }),
    ]);
    expect(realized[0]?.value).toBeGreaterThan(0);
  }, 300_000);

  it('changes nothing that no person approved', async () => {
    const before = await podTemplate('waiting', 'idle');
    const patches = await patchCalls();
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    expect(await applied('waiting', 'idle')).toBeUndefined();
    expect(await podTemplate('waiting', 'idle')).toEqual(before);
    // kopek's own request counter: no patch to any Deployment in these 15 s.
    expect(await patchCalls()).toBe(patches);
  }, 60_000);

  it('reverts 20 of 20 changes whose new pods stay Pending for lack of Spot capacity, to the templates before', async () => {
    const nodes = await kubectlJson<{
      items: { metadata: { name: string; labels: Record<string, string> } }[];
    }>(['get', 'nodes']);
    const spotNodes = nodes.items
      .filter((n) => isSpot(n.metadata.labels))
      .map((n) => n.metadata.name);
    for (const node of spotNodes) await cluster.kubectl(['cordon', node]);
    try {
      const before = await Promise.all(REVERTED.map((name) => podTemplate('nospot', name)));
      for (const name of REVERTED) await approve('nospot', name);
      const done = await Promise.all(
        REVERTED.map((name) =>
          until(
            `the end of ${name}'s change`,
            () => applied('nospot', name),
            (a) =>
              a?.outcome === 'RolledBack' || a?.outcome === 'Failed' || a?.outcome === 'Succeeded',
          ),
        ),
      );
      expect(done.map((a) => [a?.outcome, a?.reason])).toEqual(
        REVERTED.map(() => ['RolledBack', 'PodsUnschedulable']),
      );
      const after = await Promise.all(REVERTED.map((name) => podTemplate('nospot', name)));
      // The objects themselves, as the API server returns them: equal to the ones before.
      expect(after).toEqual(before);
      const seconds = done
        .map((a) => (Date.parse(a?.updatedAt ?? '') - Date.parse(a?.appliedAt ?? '')) / 1000)
        .sort((x, y) => x - y);
      console.log(
        `apply.test: ${after.filter((t, i) => JSON.stringify(t) === JSON.stringify(before[i])).length} of ${REVERTED.length} templates equal after revert; patch → RolledBack (s, settle period 10 s included): min ${seconds[0]}, median ${seconds[Math.floor(seconds.length / 2)]}, max ${seconds.at(-1)}`,
      );
    } finally {
      for (const node of spotNodes) await cluster.kubectl(['uncordon', node]);
    }
  }, 600_000);
});
