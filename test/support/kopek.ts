import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch } from 'undici';
import { parse, stringify } from 'yaml';
import { LocalCluster, type StartOptions } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import { until } from './until.ts';

const CHART_FILES = fileURLToPath(new URL('../../charts/kopek/files/', import.meta.url));
export const CRDS = fileURLToPath(new URL('../../crds/', import.meta.url));
export const KOPEK_CLI = fileURLToPath(new URL('../../operator/cli/kopek.ts', import.meta.url));

/**
 * Waits until the API server serves these CRDs (their Established condition is True). Reads the
 * CRD as JSON: `kubectl wait --for=condition=Established` and a jsonpath filter both fail at once
 * on a CRD whose status has no conditions yet, as happens under load.
 */
export async function waitForCrds(cluster: LocalCluster, names: readonly string[]): Promise<void> {
  for (const name of names)
    await until(
      `CRD ${name} is established`,
      async () => {
        const crd = JSON.parse(
          (await cluster.kubectl(['get', 'crd', name, '-o', 'json'])).stdout,
        ) as {
          status?: { conditions?: { type: string; status: string }[] | null };
        };
        return (crd.status?.conditions ?? []).find((c) => c.type === 'Established')?.status;
      },
      (status) => status === 'True',
    );
}

/** Installs kopek's CRDs and waits until the API server serves them. */
export async function installCrds(cluster: LocalCluster): Promise<void> {
  await cluster.kubectl(['apply', '--server-side', '-f', CRDS]);
  await waitForCrds(cluster, ['workloadrecommendations.kopek.dev', 'savingspolicies.kopek.dev']);
}

const rbac = 'rbac.authorization.k8s.io';

async function chartRules(file: string): Promise<unknown[]> {
  return parse(await readFile(join(CHART_FILES, file), 'utf8')) as unknown[];
}

/** A ClusterRole with `rules` and its binding to `subjects`, as the chart writes them. */
function clusterRoleWithBinding(
  name: string,
  rules: unknown,
  subjects: { kind: string; name: string; namespace: string }[],
): object[] {
  return [
    { apiVersion: `${rbac}/v1`, kind: 'ClusterRole', metadata: { name }, rules },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name },
      subjects,
    },
  ];
}

/**
 * Creates ServiceAccount `namespace/kopek` with the chart's own RBAC rules (the files the chart's
 * ClusterRoles and Role include), so tests run kopek with exactly the permissions users grant.
 */
export async function installChartRbac(
  cluster: LocalCluster,
  namespace = 'kopek',
  options: { apply?: boolean } = {},
): Promise<void> {
  const clusterRules = [
    ...(await chartRules('clusterrole-rules.yaml')),
    ...(options.apply ? await chartRules('clusterrole-apply-rules.yaml') : []),
  ];
  const subjects = [{ kind: 'ServiceAccount', name: 'kopek', namespace }];
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kopek', namespace } },
    ...clusterRoleWithBinding('kopek', clusterRules, subjects),
    ...clusterRoleWithBinding(
      'kopek-metrics-auth',
      await chartRules('metrics-auth-rules.yaml'),
      subjects,
    ),
    {
      apiVersion: `${rbac}/v1`,
      kind: 'Role',
      metadata: { name: 'kopek-leader-election', namespace },
      rules: await chartRules('leader-election-role-rules.yaml'),
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

/**
 * Creates ServiceAccount `namespace/name` bound to the chart's metrics-reader rules (what a
 * Prometheus needs to scrape kopek) and returns a token for it.
 */
export async function metricsReaderToken(
  cluster: LocalCluster,
  namespace: string,
  name: string,
): Promise<string> {
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    ...clusterRoleWithBinding(
      `${namespace}-${name}-metrics-reader`,
      await chartRules('metrics-reader-rules.yaml'),
      [{ kind: 'ServiceAccount', name, namespace }],
    ),
  ];
  await cluster.kubectl(['apply', '-f', '-'], {
    input: objects.map((object) => stringify(object)).join('---\n'),
  });
  return serviceAccountToken(cluster, namespace, name);
}

/**
 * Creates ServiceAccount `kopek/scraper` bound to an installed chart's metrics-reader
 * ClusterRole (`clusterRole`) and returns a token for it: a Prometheus as the chart's README
 * tells people to set one up.
 */
export async function chartScraperToken(
  cluster: LocalCluster,
  clusterRole = 'kopek-metrics-reader',
): Promise<string> {
  await cluster.kubectl(['create', 'serviceaccount', 'scraper', '-n', 'kopek']);
  await cluster.kubectl([
    'create',
    'clusterrolebinding',
    'scraper-reads-kopek',
    `--clusterrole=${clusterRole}`,
    '--serviceaccount=kopek:scraper',
  ]);
  return serviceAccountToken(cluster, 'kopek', 'scraper');
}

/** A fresh token (TokenRequest) of ServiceAccount `namespace/name`, valid for an hour. */
export async function serviceAccountToken(
  cluster: LocalCluster,
  namespace: string,
  name: string,
): Promise<string> {
  return (
    await cluster.kubectl(['create', 'token', name, '-n', namespace, '--duration=1h'])
  ).stdout.trim();
}

/** Who holds kopek's Lease (kopek/kopek): '' once released, undefined when there is none. */
export async function leaseHolder(cluster: LocalCluster): Promise<string | undefined> {
  const result = await cluster.kubectl(
    ['get', 'lease', 'kopek', '-n', 'kopek', '-o', 'jsonpath={.spec.holderIdentity}'],
    { allowFailure: true },
  );
  return result.exitCode === 0 ? result.stdout : undefined;
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

/** How to reach a secure metrics server: a scraper's token and the server's certificate. */
export interface ScrapeCredentials {
  token?: string;
  /** PEM of the certificate to trust (kopek's `metricsCertificate`). */
  ca?: string;
  /** Skip verifying the server's certificate, as the chart's ServiceMonitor does for a self-signed one. */
  insecure?: boolean;
}

/** GET a path of kopek's metrics server, over HTTPS with a bearer token when given them. */
export async function getMetricsPath(
  metricsUrl: string,
  path: string,
  credentials: ScrapeCredentials = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const dispatcher =
    credentials.ca !== undefined || credentials.insecure === true
      ? new Agent({
          connect: {
            ...(credentials.ca !== undefined ? { ca: credentials.ca } : {}),
            rejectUnauthorized: credentials.insecure !== true,
          },
        })
      : undefined;
  try {
    const response = await undiciFetch(`${metricsUrl}${path}`, {
      headers: credentials.token ? { authorization: `Bearer ${credentials.token}` } : {},
      ...(dispatcher ? { dispatcher } : {}),
    });
    return {
      status: response.status,
      text: await response.text(),
      headers: response.headers as unknown as Headers,
    };
  } finally {
    await dispatcher?.close();
  }
}

/** Reads kopek's /metrics into samples (throws unless the scrape is allowed). */
export async function scrape(
  metricsUrl: string,
  credentials: ScrapeCredentials = {},
): Promise<MetricSample[]> {
  const { status, text } = await getMetricsPath(metricsUrl, '/metrics', credentials);
  if (status !== 200) throw new Error(`scraping ${metricsUrl}/metrics: HTTP ${status}: ${text}`);
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

/** Reviews are POSTs that store nothing: asking about a scrape's token is not a write. */
const REVIEWS = new Set(['tokenreviews', 'subjectaccessreviews']);

/** Sums kopek's own counter of requests that change something (leases excluded unless asked). */
export async function writeCalls(
  metricsUrl: string,
  options: { includeLeases?: boolean; credentials?: ScrapeCredentials } = {},
): Promise<number> {
  const writes = new Set(['apply', 'apply-status', 'create', 'update', 'delete', 'patch']);
  return (await scrape(metricsUrl, options.credentials))
    .filter(
      (sample) =>
        sample.name === 'kopek_kube_requests_total' &&
        writes.has(sample.labels.verb ?? '') &&
        !REVIEWS.has(sample.labels.resource ?? '') &&
        (options.includeLeases === true || sample.labels.resource !== 'leases'),
    )
    .reduce((total, sample) => total + sample.value, 0);
}
