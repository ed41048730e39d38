import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseRunConfig } from '../../operator/config.ts';
import { createLogger } from '../../operator/log.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import { DASHBOARD_PATH } from '../chart/dashboard.ts';
import {
  CHART_DIR,
  ensureHelm,
  findObject,
  helm,
  parseManifests,
  renderChart,
  valuesArgs,
  type KubeObject,
} from '../chart/helm.ts';
import { operatorCommand, operatorContainer } from '../chart/operator-command.ts';
import { NODE_OPTIONS } from '../image/spec.ts';
import { chartScraperToken, getMetricsPath, leaseHolder, waitForCrds } from '../support/kopek.ts';

const FULL_VALUES = fileURLToPath(new URL('../chart/values-full.yaml', import.meta.url));
const SHOP = fileURLToPath(new URL('../demo/shop.yaml', import.meta.url));
const MONITORING_API = ['--api-versions', 'monitoring.coreos.com/v1'];

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const fileRules = (name: string): Rule[] =>
  parse(readFileSync(`${CHART_DIR}files/${name}`, 'utf8')) as Rule[];

/**
 * The render with the dashboard's JSON replaced by its digest: the JSON has its own tests and
 * would otherwise make every dashboard edit a snapshot update of 1,000 lines.
 */
function snapshotText(rendered: string): string {
  const digest = createHash('sha256')
    .update(readFileSync(DASHBOARD_PATH, 'utf8').trim())
    .digest('hex');
  return rendered.replace(
    /^( {2}kopek\.json: \|-\n)(?: {4}.*\n|\n)*/m,
    `$1    <charts/kopek/dashboards/kopek.json, sha256 ${digest}>\n`,
  );
}

const kinds = (objects: KubeObject[]): string[] =>
  objects.map((object) => `${object.kind}/${object.metadata.name}`).sort();

describe('the kopek chart, rendered', () => {
  beforeAll(async () => {
    await ensureHelm();
  });

  it('passes helm lint --strict with the defaults and with every option set', async () => {
    const defaults = await helm(['lint', '--strict', CHART_DIR]);
    expect(defaults.stdout).toContain('0 chart(s) failed');
    const full = await helm(['lint', '--strict', CHART_DIR, '--values', FULL_VALUES]);
    expect(full.stdout).toContain('0 chart(s) failed');
  });

  it('renders the defaults as in the snapshot', async () => {
    const rendered = await renderChart();
    await expect(snapshotText(rendered)).toMatchFileSnapshot('../chart/snapshots/default.yaml');
    expect(kinds(parseManifests(rendered))).toEqual([
      'ClusterRole/kopek',
      'ClusterRole/kopek-metrics-auth',
      'ClusterRole/kopek-metrics-reader',
      'ClusterRoleBinding/kopek',
      'ClusterRoleBinding/kopek-metrics-auth',
      'ConfigMap/kopek-dashboard',
      'Deployment/kopek',
      'NetworkPolicy/kopek',
      'PodDisruptionBudget/kopek',
      'Role/kopek-leader-election',
      'RoleBinding/kopek-leader-election',
      'SavingsPolicy/recommend-everywhere',
      'Service/kopek-metrics',
      'ServiceAccount/kopek',
    ]);
  });

  it('renders every option set as in the snapshot', async () => {
    const rendered = await renderChart({ args: ['--values', FULL_VALUES, ...MONITORING_API] });
    await expect(snapshotText(rendered)).toMatchFileSnapshot('../chart/snapshots/full.yaml');
  });

  it('renders the ServiceMonitor and PrometheusRule only when enabled and the cluster serves monitoring.coreos.com/v1', async () => {
    const monitoring = (objects: KubeObject[]): string[] =>
      objects
        .filter((object) => object.apiVersion === 'monitoring.coreos.com/v1')
        .map((object) => object.kind)
        .sort();
    const enabled = {
      metrics: { serviceMonitor: { enabled: true } },
      prometheusRule: { enabled: true },
    };
    const withApi = parseManifests(await renderChart({ values: enabled, args: MONITORING_API }));
    expect(monitoring(withApi)).toEqual(['PrometheusRule', 'ServiceMonitor']);
    expect(monitoring(parseManifests(await renderChart({ values: enabled })))).toEqual([]);
    expect(monitoring(parseManifests(await renderChart({ args: MONITORING_API })))).toEqual([]);

    // The ServiceMonitor scrapes the metrics Service's named port, which the container serves.
    const service = findObject(withApi, 'Service') as KubeObject & {
      spec: { ports: { name: string; targetPort: string }[]; selector: Record<string, string> };
    };
    const monitor = findObject(withApi, 'ServiceMonitor') as KubeObject & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string; path: string }[];
      };
    };
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toMatchObject([{ port: 'metrics', path: '/metrics' }]);
    expect(service.spec.ports).toMatchObject([{ name: 'metrics', targetPort: 'metrics' }]);
    const container = operatorContainer(findObject(withApi, 'Deployment'));
    expect(container.ports).toEqual([{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
    expect(container.args).toContain('--metrics-bind-address=0.0.0.0:8080');
  });

  /** Bad values and the message naming the field; `schema: false` marks a check in the templates. */
  const BAD_VALUES: {
    name: string;
    values: Record<string, unknown>;
    message: string;
    schema?: false;
  }[] = [
    {
      name: 'a negative replicaCount',
      values: { replicaCount: -1 },
      message: "at '/replicaCount': minimum: got -1, want 1",
    },
    {
      name: 'an unknown image pullPolicy',
      values: { image: { pullPolicy: 'Sometimes' } },
      message: "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    },
    {
      name: 'resources as a string',
      values: { resources: '1 CPU' },
      message: "at '/resources': got string, want object",
    },
    {
      name: 'a memory limit that is not a quantity',
      values: { resources: { limits: { memory: 'lots' } } },
      message: "at '/resources/limits/memory': 'lots' does not match pattern",
    },
    {
      name: 'an unknown top-level key',
      values: { replicas: 3 },
      message: "at '': additional properties 'replicas' not allowed",
    },
    {
      name: 'an unknown log level',
      values: { logLevel: 'verbose' },
      message: "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'",
    },
    {
      name: 'apply.enabled as a string',
      // Quoted: YAML 1.1 (helm) would read an unquoted yes as true.
      values: { apply: { enabled: 'true' } },
      message: "at '/apply/enabled': got string, want boolean",
    },
    {
      name: 'a dashboard label that is not a string',
      values: { dashboard: { labels: { grafana_dashboard: 1 } } },
      message: "at '/dashboard/labels/grafana_dashboard': got number, want string",
    },
    {
      name: 'a scrape interval that is not a Prometheus duration',
      values: { metrics: { serviceMonitor: { interval: '30 seconds' } } },
      message: "at '/metrics/serviceMonitor/interval': '30 seconds' does not match pattern",
    },
    {
      name: 'several replicas without leader election',
      values: { leaderElection: { enabled: false } },
      message: 'replicaCount is 2 but leaderElection.enabled is false',
      schema: false,
    },
  ];

  it.each(BAD_VALUES)('refuses $name, naming the field', async ({ values, message, schema }) => {
    // helm template (as install and upgrade) stops with the message.
    await expect(renderChart({ values })).rejects.toThrow(message);
    const lint = await helm(['lint', '--strict', CHART_DIR, ...valuesArgs(values)], {
      allowFailure: true,
    });
    expect(lint.stdout + lint.stderr).toContain(message);
    // helm lint fails on schema errors; a template's `fail` it only reports as [INFO].
    if (schema !== false) expect(lint.exitCode).not.toBe(0);
  });

  it('grants the recommend-mode rules as written, and patch on workloads and Services or get on secrets only when enabled', async () => {
    const clusterRole = async (values: Record<string, unknown>): Promise<Rule[]> =>
      (
        findObject(
          parseManifests(await renderChart({ values })),
          'ClusterRole',
          'kopek',
        ) as KubeObject & {
          rules: Rule[];
        }
      ).rules;
    const recommend = fileRules('clusterrole-rules.yaml');
    expect(await clusterRole({})).toEqual(recommend);

    const applying = await clusterRole({ apply: { enabled: true } });
    expect(applying.slice(0, recommend.length)).toEqual(recommend);
    expect(applying.slice(recommend.length)).toEqual([
      {
        apiGroups: ['apps'],
        resources: ['deployments', 'statefulsets', 'daemonsets'],
        verbs: ['patch'],
      },
      { apiGroups: ['batch'], resources: ['cronjobs'], verbs: ['patch'] },
      { apiGroups: ['argoproj.io'], resources: ['rollouts'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['services'], verbs: ['patch'] },
    ]);
    const secrets = await clusterRole({ registry: { readPullSecrets: true } });
    expect(secrets.slice(recommend.length)).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
    ]);

    const role = findObject(parseManifests(await renderChart()), 'Role') as KubeObject & {
      rules: Rule[];
    };
    expect(role.metadata.namespace).toBe('kopek');
    expect(role.rules).toEqual(fileRules('leader-election-role-rules.yaml'));
  });

  it('gives the operator flags and environment that `kopek run` accepts', async () => {
    const full = parse(readFileSync(FULL_VALUES, 'utf8')) as Record<string, unknown> & {
      traffic: { queries: { istio: string } };
      nodeOptions: string;
    };
    for (const [values, port, lease] of [
      [{}, 8080, 'kopek'],
      [full, 9090, 'kopek-leader'],
    ] as const) {
      const deployment = findObject(parseManifests(await renderChart({ values })), 'Deployment');
      const pod = { namespace: 'kopek', name: 'kopek-abc12' };
      const { args, env } = operatorCommand(deployment, pod, {});
      expect(parseRunConfig(args, env)).toMatchObject({
        metricsHost: '0.0.0.0',
        metricsPort: port,
        metricsSecure: true,
        leaderElect: true,
        leaderElectionNamespace: 'kopek',
        leaderElectionId: lease,
        identity: 'kopek-abc12',
      });
      // Node's options: the image's small young generation unless the values say otherwise.
      expect(env.NODE_OPTIONS).toBe(values === full ? full.nodeOptions : NODE_OPTIONS);
      expect(operatorContainer(deployment).ports).toEqual([
        { name: 'metrics', containerPort: port, protocol: 'TCP' },
      ]);
      // Measured traffic only when a Prometheus URL is given.
      const traffic = parseRunConfig(args, env).traffic;
      if (values !== full) expect(traffic).toBeUndefined();
      else
        expect(traffic).toEqual({
          prometheusUrl: 'https://thanos-query.monitoring:10902',
          bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
          caFile: '/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt',
          timeoutMs: 10_000,
          source: 'istio',
          window: '3d',
          refreshIntervalMs: 1_800_000,
          queries: { istio: full.traffic.queries.istio },
        });
    }
  });

  describe('metrics security', () => {
    interface Probe {
      httpGet?: { path: string; port: string; scheme?: string };
    }
    interface Endpoint {
      scheme: string;
      bearerTokenFile?: string;
      tlsConfig?: {
        insecureSkipVerify?: boolean;
        serverName?: string;
        ca?: { secret: { name: string; key: string } };
      };
    }
    const render = async (values: Record<string, unknown>) =>
      parseManifests(
        await renderChart({
          values: {
            ...values,
            metrics: { serviceMonitor: { enabled: true }, ...(values.metrics as object) },
          },
          args: MONITORING_API,
        }),
      );
    const probes = (objects: KubeObject[]): (string | undefined)[] => {
      const container = operatorContainer(findObject(objects, 'Deployment')) as unknown as Record<
        string,
        Probe
      >;
      return ['startupProbe', 'livenessProbe', 'readinessProbe'].map(
        (probe) => container[probe]?.httpGet?.scheme,
      );
    };
    const endpoint = (objects: KubeObject[]): Endpoint => {
      const monitor = findObject(objects, 'ServiceMonitor') as KubeObject & {
        spec: { endpoints: Endpoint[] };
      };
      const [first] = monitor.spec.endpoints;
      if (!first) throw new Error('the ServiceMonitor has no endpoint');
      return first;
    };
    const rules = (objects: KubeObject[], name: string): Rule[] =>
      (findObject(objects, 'ClusterRole', name) as KubeObject & { rules: Rule[] }).rules;

    it('by default: HTTPS with token checks, probes over HTTPS, a ServiceMonitor sending its token', async () => {
      const objects = await render({});
      expect(operatorContainer(findObject(objects, 'Deployment')).args).toContain(
        '--metrics-secure=true',
      );
      expect(probes(objects)).toEqual(['HTTPS', 'HTTPS', 'HTTPS']);
      expect(endpoint(objects)).toMatchObject({
        scheme: 'https',
        bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
        tlsConfig: { insecureSkipVerify: true },
      });
      expect(rules(objects, 'kopek-metrics-auth')).toEqual(fileRules('metrics-auth-rules.yaml'));
      expect(rules(objects, 'kopek-metrics-reader')).toEqual([
        { nonResourceURLs: ['/metrics'], verbs: ['get'] },
      ]);
      expect(findObject(objects, 'ClusterRoleBinding', 'kopek-metrics-auth')).toMatchObject({
        roleRef: { kind: 'ClusterRole', name: 'kopek-metrics-auth' },
        subjects: [{ kind: 'ServiceAccount', name: 'kopek', namespace: 'kopek' }],
      });
      // Nobody reads the metrics until someone is bound to the reader role.
      expect(kinds(objects)).not.toContain('ClusterRoleBinding/kopek-metrics-reader');
    });

    it('binds the readers it is given to the metrics-reader ClusterRole', async () => {
      const objects = await render({
        metrics: {
          readers: [
            { kind: 'ServiceAccount', name: 'prometheus-k8s', namespace: 'monitoring' },
            { kind: 'ServiceAccount', name: 'local-scraper' },
            { kind: 'Group', name: 'observers' },
          ],
        },
      });
      expect(findObject(objects, 'ClusterRoleBinding', 'kopek-metrics-reader')).toMatchObject({
        roleRef: { kind: 'ClusterRole', name: 'kopek-metrics-reader' },
        subjects: [
          { kind: 'ServiceAccount', name: 'prometheus-k8s', namespace: 'monitoring' },
          { kind: 'ServiceAccount', name: 'local-scraper', namespace: 'kopek' },
          { kind: 'Group', name: 'observers', apiGroup: 'rbac.authorization.k8s.io' },
        ],
      });
    });

    it('mounts a certificate Secret, passes its directory, and has Prometheus verify it', async () => {
      const objects = await render({ metrics: { certSecret: 'kopek-metrics-tls' } });
      const deployment = findObject(objects, 'Deployment');
      const { args, env } = operatorCommand(deployment, { namespace: 'kopek', name: 'p' }, {});
      expect(parseRunConfig(args, env).metricsCertDir).toBe('/etc/kopek/metrics-tls');
      const pod = (deployment.spec as { template: { spec: { volumes: unknown[] } } }).template.spec;
      expect(pod.volumes).toContainEqual({
        name: 'metrics-tls',
        secret: { secretName: 'kopek-metrics-tls' },
      });
      expect(
        (operatorContainer(deployment) as unknown as { volumeMounts: unknown[] }).volumeMounts,
      ).toContainEqual({
        name: 'metrics-tls',
        mountPath: '/etc/kopek/metrics-tls',
        readOnly: true,
      });
      expect(endpoint(objects).tlsConfig).toEqual({
        serverName: 'kopek-metrics.kopek.svc',
        ca: { secret: { name: 'kopek-metrics-tls', key: 'ca.crt' } },
      });
    });

    it('serves plain HTTP, with no review permissions, only when metrics.secure is false', async () => {
      const objects = await render({
        metrics: { secure: false, certSecret: 'ignored', podAnnotations: true },
      });
      const deployment = findObject(objects, 'Deployment');
      expect(operatorContainer(deployment).args).toContain('--metrics-secure=false');
      expect(operatorContainer(deployment).args.join(' ')).not.toContain('--metrics-cert-dir');
      expect(probes(objects)).toEqual([undefined, undefined, undefined]);
      expect(endpoint(objects)).toEqual(expect.objectContaining({ scheme: 'http' }));
      expect(endpoint(objects).bearerTokenFile).toBeUndefined();
      expect(kinds(objects).filter((kind) => kind.includes('metrics-'))).toEqual([]);
      const template = (deployment.spec as { template: KubeObject }).template;
      expect(template.metadata.annotations?.['prometheus.io/scheme']).toBe('http');
    });
  });

  describe('the NetworkPolicy', () => {
    interface Port {
      port: number | string;
      protocol: string;
    }
    interface PolicyRule {
      ports?: Port[];
      from?: unknown[];
      to?: unknown[];
    }
    interface Policy extends KubeObject {
      spec: {
        podSelector: { matchLabels: Record<string, string> };
        policyTypes: string[];
        ingress: PolicyRule[];
        egress: PolicyRule[];
      };
    }
    const policy = async (values: Record<string, unknown> = {}): Promise<Policy> =>
      findObject(parseManifests(await renderChart({ values })), 'NetworkPolicy') as Policy;
    const ports = (rules: PolicyRule[]): string[] =>
      rules.flatMap((rule) => (rule.ports ?? []).map((p) => `${p.port}/${p.protocol}`)).sort();

    it("selects kopek's pods, lets in only the metrics port, and lets out only DNS, the API server and HTTPS", async () => {
      const objects = parseManifests(await renderChart());
      const rendered = findObject(objects, 'NetworkPolicy') as Policy;
      const deployment = findObject(objects, 'Deployment') as KubeObject & {
        spec: { template: { metadata: { labels: Record<string, string> } } };
      };
      expect(rendered.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(deployment.spec.template.metadata.labels).toMatchObject(
        rendered.spec.podSelector.matchLabels,
      );
      expect(rendered.spec.ingress).toEqual([
        { ports: [{ port: 'metrics', protocol: 'TCP' }], from: [{ namespaceSelector: {} }] },
      ]);
      // The named port is the container's: scrapes and the kubelet's probes use it.
      expect(operatorContainer(deployment).ports.map((port) => port.name)).toEqual(['metrics']);
      expect(ports(rendered.spec.egress)).toEqual([
        '443/TCP',
        '443/TCP',
        '53/TCP',
        '53/UDP',
        '6443/TCP',
      ]);
      const dns = rendered.spec.egress[0];
      expect(dns?.to).toEqual([
        { namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
      ]);
    });

    it('opens egress to the configured Prometheus, narrows ingress and the API server, and adds extra rules', async () => {
      const monitoring = { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } };
      const rendered = await policy({
        networkPolicy: {
          metricsFrom: [{ namespaceSelector: monitoring }],
          egress: {
            apiServer: { ports: [443], to: [{ ipBlock: { cidr: '10.0.0.0/16' } }] },
            https: false,
            prometheus: { to: [{ namespaceSelector: monitoring }], ports: [9090] },
            extra: [{ ports: [{ port: 5000, protocol: 'TCP' }] }],
          },
        },
      });
      expect(rendered.spec.ingress[0]?.from).toEqual([{ namespaceSelector: monitoring }]);
      expect(rendered.spec.egress.slice(1)).toEqual([
        { ports: [{ port: 443, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.0.0.0/16' } }] },
        { ports: [{ port: 9090, protocol: 'TCP' }], to: [{ namespaceSelector: monitoring }] },
        { ports: [{ port: 5000, protocol: 'TCP' }] },
      ]);
    });

    it("opens egress on traffic.prometheus.url's port once kopek reads traffic, to any address unless narrowed", async () => {
      const prometheusRule = async (url: string, egress: Record<string, unknown> = {}) =>
        (
          await policy({ traffic: { prometheus: { url } }, networkPolicy: { egress } })
        ).spec.egress.slice(3);
      expect(await prometheusRule('')).toEqual([]);
      expect(await prometheusRule('http://prometheus-operated.monitoring:9090')).toEqual([
        { ports: [{ port: 9090, protocol: 'TCP' }] },
      ]);
      expect(await prometheusRule('https://thanos-query.monitoring:10902/')).toEqual([
        { ports: [{ port: 10902, protocol: 'TCP' }] },
      ]);
      expect(await prometheusRule('https://aps-proxy.example.com/workspaces/ws-1')).toEqual([
        { ports: [{ port: 443, protocol: 'TCP' }] },
      ]);
      expect(await prometheusRule('http://[fd00::10]/')).toEqual([
        { ports: [{ port: 80, protocol: 'TCP' }] },
      ]);
      const to = [{ podSelector: { matchLabels: { app: 'prometheus' } } }];
      expect(
        await prometheusRule('http://prometheus:9090', { prometheus: { to, ports: [8443] } }),
      ).toEqual([{ ports: [{ port: 8443, protocol: 'TCP' }], to }]);
    });

    it('is left out when disabled', async () => {
      const objects = parseManifests(
        await renderChart({ values: { networkPolicy: { enabled: false } } }),
      );
      expect(kinds(objects).filter((kind) => kind.startsWith('NetworkPolicy/'))).toEqual([]);
    });
  });

  it('puts the dashboard file into its ConfigMap as is, with the configured labels and namespace', async () => {
    const objects = parseManifests(
      await renderChart({
        values: { dashboard: { namespace: 'monitoring', labels: { grafana_dashboard: 'kopek' } } },
      }),
    );
    const configMap = findObject(objects, 'ConfigMap') as KubeObject & {
      data: Record<string, string>;
    };
    expect(configMap.metadata.namespace).toBe('monitoring');
    expect(configMap.metadata.labels).toMatchObject({
      grafana_dashboard: 'kopek',
      'app.kubernetes.io/name': 'kopek',
    });
    expect(configMap.data['kopek.json']).toBe(readFileSync(DASHBOARD_PATH, 'utf8').trim());
    const defaults = findObject(parseManifests(await renderChart()), 'ConfigMap');
    expect(defaults.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
  });
});

interface CanIRow {
  resource: string;
  nonResourceUrls: string;
  resourceNames: string;
  verbs: string[];
}

/** The rows of `kubectl auth can-i --list`. */
function parseCanI(text: string): CanIRow[] {
  const [header, ...lines] = text.trim().split('\n');
  expect(header).toMatch(/^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs/);
  return lines.map((line) => {
    const match = /^(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$/.exec(line);
    if (!match) throw new Error(`cannot read kubectl auth can-i --list line: ${line}`);
    return {
      resource: match[1] ?? '',
      nonResourceUrls: match[2] ?? '',
      resourceNames: match[3] ?? '',
      verbs: (match[4] ?? '').split(' ').filter(Boolean),
    };
  });
}

const rowKey = (row: CanIRow): string =>
  `${row.resource}|${row.nonResourceUrls}|${row.resourceNames}|${row.verbs.join(' ')}`;

describe('the kopek chart, installed into a real cluster', () => {
  let cluster: LocalCluster;
  let operator: RunningOperator | undefined;
  const SA = 'system:serviceaccount:kopek:kopek';

  beforeAll(async () => {
    await ensureHelm();
    cluster = await LocalCluster.start();
    await cluster.addFleet(DEFAULT_FLEET);
  });

  afterAll(async () => {
    await operator?.stop();
    await cluster.stop();
  });

  const kubeconfig = (): string[] => ['--kubeconfig', cluster.kubeconfigPath];

  /** `kubectl auth can-i` as the chart's ServiceAccount: "yes" or "no". */
  const canI = async (...args: string[]): Promise<string> =>
    (
      await cluster.kubectl(['auth', 'can-i', ...args, `--as=${SA}`], { allowFailure: true })
    ).stdout.trim();

  /**
   * A SubjectAccessReview as the chart's ServiceAccount, for resources this cluster does not
   * serve (Argo Rollouts), which `kubectl auth can-i` cannot name.
   */
  const allowed = async (attributes: Record<string, string>): Promise<boolean> => {
    const review = await cluster.kubectl(['create', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: SA,
          groups: [
            'system:serviceaccounts',
            'system:serviceaccounts:kopek',
            'system:authenticated',
          ],
          resourceAttributes: attributes,
        },
      }),
    });
    return (JSON.parse(review.stdout) as { status: { allowed: boolean } }).status.allowed;
  };
  const patchRollouts = {
    group: 'argoproj.io',
    resource: 'rollouts',
    verb: 'patch',
    namespace: 'shop',
  };

  it("installs, and kopek with the chart's ServiceAccount and flags writes recommendations", async () => {
    const install = await helm([
      'install',
      'kopek',
      CHART_DIR,
      '--namespace',
      'kopek',
      '--create-namespace',
      ...kubeconfig(),
      // Asked for, but this cluster has no Prometheus Operator: skipped, with a warning.
      '--set',
      'metrics.serviceMonitor.enabled=true',
    ]);
    expect(install.stdout).toContain('STATUS: deployed');
    expect(install.stdout).toContain('kubectl get wrec -A');
    expect(install.stdout).toContain(
      'WARNING: metrics.serviceMonitor.enabled is true but this cluster does not serve',
    );
    const manifest = (await helm(['get', 'manifest', 'kopek', '-n', 'kopek', ...kubeconfig()]))
      .stdout;
    expect(kinds(parseManifests(manifest))).not.toContain('ServiceMonitor/kopek');
    await waitForCrds(cluster, ['workloadrecommendations.kopek.dev', 'savingspolicies.kopek.dev']);

    await cluster.kubectl(['apply', '-f', SHOP]);
    const deployment = JSON.parse(
      (await cluster.kubectl(['get', 'deployment', 'kopek', '-n', 'kopek', '-o', 'json'])).stdout,
    ) as KubeObject;
    // The operator runs here as a process, with the installed Deployment's flags and environment,
    // authenticated as the chart's ServiceAccount (impersonation: RBAC sees exactly that account).
    const { args, env } = operatorCommand(
      deployment,
      { namespace: 'kopek', name: 'kopek-test-0' },
      {
        kubeconfig: await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
        'metrics-bind-address': '127.0.0.1:0',
        'batch-interval': '200ms',
        'registry-timeout': '2s',
      },
    );
    operator = await startOperator(parseRunConfig(args, env), { log: createLogger('error') });

    const shopDeployments = (
      await cluster.kubectl(['get', 'deployments', '-n', 'shop', '-o', 'name'])
    ).stdout
      .trim()
      .split('\n')
      .map((name) => name.replace('deployment.apps/', ''))
      .sort();
    expect(shopDeployments.length).toBe(5);
    await expect
      .poll(
        async () => {
          const list = JSON.parse(
            (await cluster.kubectl(['get', 'wrec', '-n', 'shop', '-o', 'json'])).stdout,
          ) as {
            items: {
              spec: { targetRef: { name: string } };
              status?: { potentialMonthlySavingsUSD?: string };
            }[];
          };
          return list.items
            .filter((item) => item.status?.potentialMonthlySavingsUSD !== undefined)
            .map((item) => item.spec.targetRef.name)
            .sort();
        },
        { timeout: 90_000, interval: 500 },
      )
      .toEqual(shopDeployments);

    // It leads through the Lease the chart's Role allows, and writes the default policy's status.
    expect(await leaseHolder(cluster)).toBe('kopek-test-0');
    await expect
      .poll(
        async () =>
          (
            await cluster.kubectl([
              'get',
              'savingspolicy',
              'recommend-everywhere',
              '-o',
              'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            ])
          ).stdout,
        { timeout: 30_000 },
      )
      .toBe('True');
    // No request was refused: the chart grants everything kopek does in recommend mode. The
    // scrape itself goes through the chart's metrics-reader ClusterRole, bound to a scraper.
    const scrape = await getMetricsPath(operator.metricsUrl, '/metrics', {
      token: await chartScraperToken(cluster),
      ...(operator.metricsCertificate ? { ca: operator.metricsCertificate } : {}),
    });
    expect(scrape.status).toBe(200);
    const metrics = scrape.text;
    expect(metrics).toMatch(/^kopek_kube_requests_total\{[^}]*code="20\d"/m);
    expect(
      metrics
        .split('\n')
        .filter((line) => /^kopek_kube_requests_total\{[^}]*code="40[13]"/.test(line)),
    ).toEqual([]);
  });

  it('gives the ServiceAccount no secrets, no wildcards and no escalate, bind or impersonate', async () => {
    // A ServiceAccount with no bindings: what every authenticated account may do anyway.
    const baseline = new Set(
      parseCanI(
        (
          await cluster.kubectl([
            'auth',
            'can-i',
            '--list',
            '-n',
            'kopek',
            '--as=system:serviceaccount:kopek:nobody',
          ])
        ).stdout,
      ).map(rowKey),
    );
    for (const namespace of ['kopek', 'shop']) {
      const rows = parseCanI(
        (await cluster.kubectl(['auth', 'can-i', '--list', '-n', namespace, `--as=${SA}`])).stdout,
      );
      const granted = rows.filter((row) => !baseline.has(rowKey(row)));
      expect(granted.map((row) => row.resource)).toContain('workloadrecommendations.kopek.dev');
      for (const row of granted) {
        expect(
          `${row.resource} ${row.nonResourceUrls} ${row.resourceNames} ${row.verbs.join(' ')}`,
          `granted in ${namespace}`,
        ).not.toContain('*');
      }
      for (const row of rows) {
        expect(row.resource, `in ${namespace}`).not.toMatch(/^secrets(\.|$)/);
        expect(row.verbs, `${row.resource} in ${namespace}`).not.toContain('escalate');
        expect(row.verbs, `${row.resource} in ${namespace}`).not.toContain('bind');
        expect(row.verbs, `${row.resource} in ${namespace}`).not.toContain('impersonate');
      }
    }
    expect(await canI('get', 'secrets', '-A')).toBe('no');
    expect(await canI('patch', 'deployments.apps', '-n', 'shop')).toBe('no');
    expect(await canI('patch', 'services', '-n', 'shop')).toBe('no');
    expect(await allowed(patchRollouts)).toBe(false);
    expect(await canI('create', 'workloadrecommendations.kopek.dev', '-n', 'shop')).toBe('yes');
    expect(await canI('patch', 'savingspolicies.kopek.dev')).toBe('no');
    expect(await canI('patch', 'savingspolicies.kopek.dev', '--subresource=status')).toBe('yes');
    expect(await canI('update', 'leases.coordination.k8s.io', '-n', 'kopek')).toBe('yes');
    expect(await canI('update', 'leases.coordination.k8s.io', '-n', 'shop')).toBe('no');
    expect(await canI('impersonate', 'users')).toBe('no');
    expect(await canI('bind', 'clusterroles.rbac.authorization.k8s.io')).toBe('no');
    expect(await canI('escalate', 'clusterroles.rbac.authorization.k8s.io')).toBe('no');
  });

  it('grants patch on workloads and Services and get on secrets only once they are enabled', async () => {
    await helm([
      'upgrade',
      'kopek',
      CHART_DIR,
      '--namespace',
      'kopek',
      ...kubeconfig(),
      '--reuse-values',
      '--set',
      'apply.enabled=true',
      '--set',
      'registry.readPullSecrets=true',
    ]);
    expect(await canI('patch', 'deployments.apps', '-n', 'shop')).toBe('yes');
    expect(await allowed(patchRollouts)).toBe(true);
    expect(await canI('patch', 'services', '-n', 'shop')).toBe('yes');
    expect(await canI('update', 'deployments.apps', '-n', 'shop')).toBe('no');
    expect(await canI('update', 'services', '-n', 'shop')).toBe('no');
    expect(await canI('patch', 'replicasets.apps', '-n', 'shop')).toBe('no');
    expect(await canI('patch', 'jobs.batch', '-n', 'shop')).toBe('no');
    expect(await canI('get', 'secrets', '-n', 'shop')).toBe('yes');
    expect(await canI('list', 'secrets', '-n', 'shop')).toBe('no');
  });

  it('runs its pods in a namespace that enforces Pod Security "restricted"', async () => {
    const namespace = 'kopek-restricted';
    await cluster.kubectl(['create', 'namespace', namespace]);
    await cluster.kubectl([
      'label',
      'namespace',
      namespace,
      'pod-security.kubernetes.io/enforce=restricted',
      'pod-security.kubernetes.io/enforce-version=latest',
      'pod-security.kubernetes.io/warn=restricted',
    ]);
    // The control: a pod without the restricted settings is refused here.
    const plain = await cluster.kubectl(
      ['run', 'plain', '-n', namespace, '--image=nginx:1.27', '--dry-run=server'],
      { allowFailure: true },
    );
    expect(plain.exitCode).not.toBe(0);
    expect(plain.stderr).toContain('violates PodSecurity "restricted:latest"');

    const install = await helm([
      'install',
      'kopek-psa',
      CHART_DIR,
      '--namespace',
      namespace,
      ...kubeconfig(),
      '--set',
      'defaultSavingsPolicy.enabled=false',
    ]);
    // The warn label makes the API server check the Deployment's pod template on creation.
    expect(install.stderr).not.toContain('would violate PodSecurity');
    // The real path: the Deployment's ReplicaSet creates the pods, which PodSecurity admits.
    await expect
      .poll(
        async () =>
          (
            await cluster.kubectl([
              'get',
              'pods',
              '-n',
              namespace,
              '-l',
              'app.kubernetes.io/instance=kopek-psa',
              '-o',
              'name',
            ])
          ).stdout
            .trim()
            .split('\n')
            .filter(Boolean).length,
        { timeout: 60_000, interval: 500 },
      )
      .toBe(2);
    const events = await cluster.kubectl([
      'get',
      'events',
      '-n',
      namespace,
      '--field-selector',
      'reason=FailedCreate',
      '-o',
      'name',
    ]);
    expect(events.stdout.trim()).toBe('');
  });
});
