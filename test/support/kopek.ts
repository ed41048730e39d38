import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { LocalCluster, type StartOptions } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';

const CHART_FILES = fileURLToPath(new URL('../../charts/kopek/files/', import.meta.url));
export const CRDS = fileURLToPath(new URL('../../crds/', import.meta.url));
export const KOPEK_CLI = fileURLToPath(new URL('../../operator/cli/kopek.ts', import.meta.url));

/** Installs kopek's CRDs and waits until the API server serves them. */
export async function installCrds(cluster: LocalCluster): Promise<void> {
  await cluster.kubectl(['apply', '--server-side', '-f', CRDS]);
  await cluster.kubectl([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    'crd/workloadrecommendations.kopek.dev',
    'crd/savingspolicies.kopek.dev',
  ]);
}

/**
 * Creates ServiceAccount `namespace/kopek` with the chart's own RBAC rules (the files the chart's
 * ClusterRole and Role include), so tests run kopek with exactly the permissions users grant.
 */
export async function installChartRbac(
  cluster: LocalCluster,
  namespace = 'kopek',
  options: { apply?: boolean } = {},
): Promise<void> {
  const clusterRules = [
    ...(parse(await readFile(join(CHART_FILES, 'clusterrole-rules.yaml'), 'utf8')) as unknown[]),
    ...(options.apply
      ? (parse(
          await readFile(join(CHART_FILES, 'clusterrole-apply-rules.yaml'), 'utf8'),
        ) as unknown[])
      : []),
  ];
  const roleRules = parse(
    await readFile(join(CHART_FILES, 'leader-election-role-rules.yaml'), 'utf8'),
  ) as unknown;
  const subjects = [{ kind: 'ServiceAccount', name: 'kopek', namespace }];
  const rbac = 'rbac.authorization.k8s.io';
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kopek', namespace } },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRole',
      metadata: { name: 'kopek' },
      rules: clusterRules,
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'kopek' },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'kopek' },
      subjects,
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'Role',
      metadata: { name: 'kopek-leader-election', namespace },
      rules: roleRules,
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'kopek-leader-election', namespace },
      roleRef: { apiGroup: rbac, kind: 'Role', name: 'kopek-leader-election' },
      subjects,
    },
  ];
  await cluster.kubectl(['apply', '-f', '-'], {
    input: objects.map((object) => stringify(object)).join('---\n'),
  });
}

/** A local cluster ready for kopek: the EKS-like fleet, kopek's CRDs, and ServiceAccount kopek/kopek with the chart's RBAC (with `apply`: as apply.enabled grants it). */
export async function startClusterForKopek(
  options: StartOptions & { apply?: boolean } = {},
): Promise<LocalCluster> {
  const { apply, ...start } = options;
  const cluster = await LocalCluster.start(start);
  await cluster.addFleet(DEFAULT_FLEET);
  await installCrds(cluster);
  await installChartRbac(cluster, 'kopek', { apply: apply === true });
  return cluster;
}

/** One sample of a Prometheus text exposition: name, labels (any order) and value. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Reads kopek's /metrics into samples. */
export async function scrape(metricsUrl: string): Promise<MetricSample[]> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match?.[1] || match[3] === undefined) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[label[1] ?? ''] = label[2] ?? '';
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sums kopek's own counter of requests that change something (leases excluded unless asked). */
export async function writeCalls(
  metricsUrl: string,
  options: { includeLeases?: boolean } = {},
): Promise<number> {
  const writes = new Set(['apply', 'apply-status', 'create', 'update', 'delete', 'patch']);
  return (await scrape(metricsUrl))
    .filter(
      (sample) =>
        sample.name === 'kopek_kube_requests_total' &&
        writes.has(sample.labels.verb ?? '') &&
        (options.includeLeases === true || sample.labels.resource !== 'leases'),
    )
    .reduce((total, sample) => total + sample.value, 0);
}
