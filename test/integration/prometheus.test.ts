import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import {
  REALIZED_SAVINGS_METRIC,
  REALIZED_SAVINGS_PANEL,
  metricNames,
  panelQueries,
  parseLabelValues,
  readDashboard,
  substituteVariables,
  variableQueries,
} from '../chart/dashboard.ts';
import { findObject, parseManifests, renderChart, type KubeObject } from '../chart/helm.ts';
import { operatorCommand } from '../chart/operator-command.ts';
import { LocalPrometheus } from '../prometheus/prometheus.ts';
import { Component, waitUntil } from '../cluster/process.ts';
import { getMetricsPath, installCrds, KOPEK_CLI, metricsReaderToken } from '../support/kopek.ts';
import { TrafficExporter } from '../traffic/exporter.ts';
import { beylaSeries } from '../traffic/scenario.ts';
import { freePort } from '../support/ports.ts';
import { until } from '../support/until.ts';

const SHOP = fileURLToPath(new URL('../demo/shop.yaml', import.meta.url));
const NAMESPACE = 'kopek';
/** Chatty edges of the shop, as Grafana Beyla would measure them, for the cross-zone edge panel. */
const SHOP_EDGES = [
  {
    client: { namespace: 'shop', name: 'storefront' },
    server: { namespace: 'shop', name: 'catalog' },
    requestGiBPerHour: 0.5,
  },
  {
    client: { namespace: 'shop', name: 'storefront' },
    server: { namespace: 'shop', name: 'recommendations' },
    requestGiBPerHour: 0.2,
  },
];

interface ServiceMonitor extends KubeObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    namespaceSelector: { matchNames: string[] };
    endpoints: {
      honorLabels?: boolean;
      port: string;
      path: string;
      scheme: string;
      bearerTokenFile?: string;
      tlsConfig?: { insecureSkipVerify?: boolean };
      interval: string;
      scrapeTimeout: string;
    }[];
  };
}

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
}

interface PrometheusRule extends KubeObject {
  spec: { groups: { name: string; rules: AlertRule[] }[] };
}

/**
 * Makes every reconcile of one workload fail, the way a broken webhook or quota would: the API
 * server refuses its WorkloadRecommendation. The reconcile-error panels and alert need failures.
 */
const REFUSE_ORDERS_DB = [
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: 'refuse-orders-db-recommendation' },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: ['kopek.dev'],
            apiVersions: ['*'],
            operations: ['CREATE', 'UPDATE'],
            resources: ['workloadrecommendations'],
          },
        ],
      },
      validations: [
        {
          expression: "object.metadata.name != 'deployment-orders-db'",
          message: "refused by the test, to make kopek's reconciles fail",
        },
      ],
    },
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: 'refuse-orders-db-recommendation' },
    spec: { policyName: 'refuse-orders-db-recommendation', validationActions: ['Deny'] },
  },
];

describe("Prometheus scraping kopek with the chart's settings; the dashboard's and alerts' PromQL", () => {
  let cluster: LocalCluster;
  let prometheus: LocalPrometheus;
  let exporter: TrafficExporter;
  let dir: string;
  const replicas: { url: string; process: Component }[] = [];
  const started: { stop(): Promise<unknown> }[] = [];
  let job: string;
  let interval: string;
  let rules: AlertRule[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-prometheus-'));
    // The same Prometheus also scrapes the shop's traffic telemetry, and kopek reads it back.
    exporter = await TrafficExporter.start(
      beylaSeries(SHOP_EDGES, ['us-east-1a', 'us-east-1b', 'us-east-1c']),
    );
    started.push(exporter);
    const prometheusPort = await freePort();
    // The chart as Prometheus Operator users install it, scraping every second for the test.
    const objects = parseManifests(
      await renderChart({
        namespace: NAMESPACE,
        values: {
          metrics: { serviceMonitor: { enabled: true, interval: '1s', scrapeTimeout: '1s' } },
          prometheusRule: { enabled: true },
          // kopek applies one approved change below, for the realized-savings panel.
          apply: { enabled: true },
          traffic: {
            prometheus: { url: `http://127.0.0.1:${prometheusPort}`, timeout: '2s' },
            window: '10s',
            refreshInterval: '1s',
          },
        },
        args: ['--api-versions', 'monitoring.coreos.com/v1'],
      }),
    );
    const monitor = findObject(objects, 'ServiceMonitor') as ServiceMonitor;
    const service = objects.find(
      (object) =>
        object.kind === 'Service' &&
        Object.entries(monitor.spec.selector.matchLabels).every(
          ([key, value]) => object.metadata.labels?.[key] === value,
        ),
    );
    if (!service) throw new Error("no Service matches the chart's ServiceMonitor selector");
    const [endpoint] = monitor.spec.endpoints;
    if (!endpoint) throw new Error("the chart's ServiceMonitor has no endpoint");
    // Prometheus Operator names the job after the Service; the alert rules select that job.
    job = service.metadata.name;
    interval = endpoint.interval;
    rules = (findObject(objects, 'PrometheusRule') as PrometheusRule).spec.groups.flatMap(
      (group) => group.rules,
    );

    cluster = await LocalCluster.start();
    started.push(cluster);
    await cluster.addFleet(DEFAULT_FLEET);
    await installCrds(cluster);
    await cluster.kubectl(['create', 'namespace', NAMESPACE]);
    await cluster.kubectl(['apply', '-f', SHOP]);
    await cluster.kubectl(['apply', '-f', '-'], {
      input: REFUSE_ORDERS_DB.map((object) => JSON.stringify(object)).join('\n'),
    });
    // Admission policies take a moment to load: wait until it refuses.
    const refusedProbe = JSON.stringify({
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'WorkloadRecommendation',
      metadata: { name: 'deployment-orders-db', namespace: 'shop' },
      spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'orders-db' } },
    });
    await until(
      'the admission policy refuses the recommendation of orders-db',
      async () =>
        (
          await cluster.kubectl(['create', '--dry-run=server', '-f', '-'], {
            input: refusedProbe,
            allowFailure: true,
          })
        ).stderr,
      (stderr) => stderr.includes('refused by the test'),
      30_000,
    );

    // Prometheus's ServiceAccount, bound to the chart's metrics-reader rules: the ServiceMonitor
    // has it send its token (bearerTokenFile), which kopek checks with the API server.
    const tokenFile = join(dir, 'prometheus-token');
    await writeFile(tokenFile, await metricsReaderToken(cluster, 'monitoring', 'prometheus'));

    // Two replicas run as the image runs them, `node operator/cli/kopek.ts run` with the
    // Deployment's flags and environment (HTTPS, token checks): one leads, the other stands by.
    const deployment = findObject(objects, 'Deployment');
    for (const name of ['kopek-0', 'kopek-1']) {
      const port = await freePort();
      const { args, env } = operatorCommand(
        deployment,
        { namespace: NAMESPACE, name },
        {
          kubeconfig: cluster.kubeconfigPath,
          'metrics-bind-address': `127.0.0.1:${port}`,
          'batch-interval': '200ms',
          'registry-timeout': '2s',
          'apply-settle-period': '3s',
        },
      );
      const replica = new Component({
        name,
        command: process.execPath,
        args: [KOPEK_CLI, 'run', ...args],
        env: { ...process.env, ...env },
        logPath: join(dir, `${name}.log`),
      });
      replica.start();
      started.push(replica);
      const url = `${endpoint.scheme}://127.0.0.1:${port}`;
      replicas.push({ url, process: replica });
      await waitUntil(
        replica,
        'served /readyz',
        async () => (await getMetricsPath(url, '/readyz', { insecure: true })).status === 200,
        60_000,
      );
    }

    prometheus = await LocalPrometheus.start({
      dir,
      port: prometheusPort,
      config: {
        global: { scrape_interval: endpoint.interval, evaluation_interval: '1s' },
        scrape_configs: [
          {
            job_name: job,
            metrics_path: endpoint.path,
            scheme: endpoint.scheme,
            scrape_interval: endpoint.interval,
            scrape_timeout: endpoint.scrapeTimeout,
            honor_labels: endpoint.honorLabels ?? false,
            // The ServiceMonitor's bearerTokenFile and tlsConfig, as Prometheus Operator writes them.
            ...(endpoint.bearerTokenFile !== undefined
              ? { authorization: { type: 'Bearer', credentials_file: tokenFile } }
              : {}),
            ...(endpoint.tlsConfig
              ? {
                  tls_config: {
                    insecure_skip_verify: endpoint.tlsConfig.insecureSkipVerify ?? false,
                  },
                }
              : {}),
            // The Service's endpoints, here the operators' loopback ports; the labels Prometheus
            // Operator adds to targets found through a ServiceMonitor.
            static_configs: [
              {
                targets: replicas.map((replica) => new URL(replica.url).host),
                labels: {
                  namespace: monitor.spec.namespaceSelector.matchNames[0] ?? NAMESPACE,
                  service: service.metadata.name,
                  endpoint: endpoint.port,
                },
              },
            ],
          },
          { job_name: 'telemetry', static_configs: [{ targets: [exporter.target] }] },
        ],
      },
      rules: { groups: (findObject(objects, 'PrometheusRule') as PrometheusRule).spec.groups },
    });
    started.push(prometheus);

    // Ready when both replicas are scraped and the leader has written the recommendations.
    await until(
      'Prometheus scrapes both replicas',
      async () => (await prometheus.query(`sum(up{job="${job}"})`)).data?.result[0]?.value[1],
      (up) => up === '2',
      30_000,
    );
    await until(
      'kopek wrote the recommendations of the shop (all but the refused orders-db)',
      async () => (await cluster.kubectl(['get', 'wrec', '-n', 'shop', '-o', 'name'])).stdout,
      (names) => names.trim().split('\n').length === 4,
      90_000,
    );
    // A person approves the Spot move of storefront under an Apply policy: once it Succeeded,
    // kopek exports what it saves, for the realized-savings panel.
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kopek.dev/v1alpha1',
        kind: 'SavingsPolicy',
        metadata: { name: 'shop-apply' },
        spec: {
          mode: 'Apply',
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
          apply: { actions: ['Spot'] },
        },
      }),
    });
    const storefront = async (field: string): Promise<string> =>
      (
        await cluster.kubectl([
          ...['get', 'wrec', 'deployment-storefront', '-n', 'shop'],
          `-o=jsonpath={${field}}`,
        ])
      ).stdout;
    await until(
      'storefront may move to Spot',
      () => storefront('.status.spot.verdict'),
      (verdict) => ['Recommended', 'Possible'].includes(verdict),
      60_000,
    );
    await cluster.kubectl([
      'patch',
      'wrec',
      'deployment-storefront',
      '-n',
      'shop',
      '--type=merge',
      '-p',
      '{"spec":{"approve":["Spot"]}}',
    ]);
    await until(
      "kopek's Spot move of storefront succeeded",
      () => storefront('.status.applied.outcome'),
      (outcome) => outcome === 'Succeeded',
      120_000,
    );
  });

  afterAll(async () => {
    // Last started, first stopped; only what beforeAll started, should it have failed midway.
    for (const component of started.reverse()) await component.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const dashboard = readDashboard();
  /** Test values for the dashboard's variables. */
  const variables = (): Record<string, string> => ({
    job,
    namespace: '.*',
    __rate_interval: '30s',
  });

  it('scrapes both replicas over HTTPS with its token, at the path and interval the ServiceMonitor sets', async () => {
    const targets = await prometheus.api<{
      activeTargets: {
        health: string;
        scrapeUrl: string;
        scrapeInterval: string;
        labels: Record<string, string>;
      }[];
    }>('/api/v1/targets');
    // kopek's two replicas (the third target is the traffic telemetry kopek reads).
    const active = (targets.data?.activeTargets ?? []).filter(
      (target) => target.labels.job === job,
    );
    expect(active).toHaveLength(2);
    for (const target of active) {
      expect(target).toMatchObject({
        health: 'up',
        scrapeInterval: interval,
        labels: { job, namespace: NAMESPACE },
      });
      expect(new URL(target.scrapeUrl).pathname).toBe('/metrics');
      // Over HTTPS with its token: the chart's default, kopek's secure metrics.
      expect(new URL(target.scrapeUrl).protocol).toBe('https:');
    }
  });

  it('knows every metric the dashboard and the alert rules read from the scraped metadata', async () => {
    const metadata = await prometheus.api<{ metric: string }[]>('/api/v1/targets/metadata', {
      match_target: `{job="${job}"}`,
    });
    const known = new Set((metadata.data ?? []).map((entry) => entry.metric));
    expect(known.size).toBeGreaterThan(20);
    const base = (name: string): string => name.replace(/_(bucket|sum|count)$/, '');
    const read = [
      ...panelQueries(dashboard).map((query) => ({
        where: `panel "${query.panel}"`,
        expr: query.expr,
      })),
      ...variableQueries(dashboard).map((variable) => ({
        where: `variable ${variable.name}`,
        expr: parseLabelValues(variable.query).selector,
      })),
      ...rules.map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr })),
    ];
    for (const { where, expr } of read) {
      for (const name of metricNames(expr)) {
        if (name === 'up') continue; // Prometheus's own, per target
        expect(
          known.has(name) || known.has(base(name)),
          `${where} reads ${name}, which kopek does not export`,
        ).toBe(true);
      }
    }
  });

  it('answers every dashboard query with data', async () => {
    const queries = panelQueries(dashboard);
    expect(queries.length).toBeGreaterThan(20);
    for (const query of queries) {
      const expr = substituteVariables(query.expr, variables());
      const where = `panel "${query.panel}" ${query.refId}: ${expr}`;
      await expect
        .poll(
          async () => {
            const answer = await prometheus.query(expr);
            if (answer.status !== 'success') throw new Error(`${where}: ${answer.error ?? ''}`);
            return answer.data?.result.length ?? 0;
          },
          { timeout: 30_000, interval: 500, message: `${where} returned no data` },
        )
        .toBeGreaterThan(0);
    }
  });

  it("answers the dashboard's variable queries with kopek's job and the workloads' namespaces", async () => {
    const values = new Map<string, string[]>();
    for (const variable of variableQueries(dashboard)) {
      const { selector, label } = parseLabelValues(variable.query);
      const answer = await prometheus.api<string[]>(`/api/v1/label/${label}/values`, {
        'match[]': substituteVariables(selector, variables()),
      });
      expect(answer.status, variable.name).toBe('success');
      values.set(variable.name, answer.data ?? []);
    }
    expect(values.get('job')).toEqual([job]);
    expect(values.get('namespace')).toEqual(['shop']);
    // The workloads' namespace survives the scrape (honorLabels), not renamed exported_namespace.
    const series = await prometheus.query(`kopek_workload_monthly_cost_usd{job="${job}"}`);
    expect(series.data?.result.length).toBeGreaterThanOrEqual(4);
    for (const sample of series.data?.result ?? []) {
      expect(sample.metric).toMatchObject({ namespace: 'shop', kind: 'Deployment' });
      expect(sample.metric.exported_namespace).toBeUndefined();
    }
  });

  it.each<[string, (leader: string) => string]>([
    [
      'Potential savings / month',
      (leader) =>
        `kopek_potential_monthly_savings_usd{job="${job}", instance="${leader}", optimization="combined"}`,
    ],
    [
      REALIZED_SAVINGS_PANEL,
      (leader) => `sum(${REALIZED_SAVINGS_METRIC}{job="${job}", instance="${leader}"})`,
    ],
  ])("shows the leader's %s once, not once per replica", async (panel, ofLeader) => {
    const total = panelQueries(dashboard).find((query) => query.panel === panel);
    if (!total) throw new Error(`no "${panel}" panel`);
    const leaders = await prometheus.query(`leader_election_master_status{job="${job}"} == 1`);
    expect(leaders.data?.result).toHaveLength(1);
    const leader = leaders.data?.result[0]?.metric.instance ?? '';
    await expect
      .poll(
        async () => {
          const [dashboardValue, leaderValue] = await Promise.all([
            prometheus.query(substituteVariables(total.expr, variables())),
            prometheus.query(ofLeader(leader)),
          ]);
          const a = Number(dashboardValue.data?.result[0]?.value[1]);
          const b = Number(leaderValue.data?.result[0]?.value[1]);
          return b > 0 && Math.abs(a - b) < 0.01 ? 'equal' : `dashboard ${a}, leader ${b}`;
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe('equal');
  });

  it('evaluates every alert rule without error, as a query and loaded as a rule file', async () => {
    const check = await LocalPrometheus.checkRules(prometheus.rulesPath);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
    expect(rules.map((rule) => rule.alert).sort()).toEqual([
      'KopekCacheStale',
      'KopekDown',
      'KopekNoLeader',
      'KopekPricesStale',
      'KopekReconcileErrors',
    ]);
    for (const rule of rules) {
      const answer = await prometheus.query(rule.expr);
      expect(answer.error, `${rule.alert}: ${rule.expr}`).toBeUndefined();
      expect(answer.status, rule.alert).toBe('success');
    }
    await expect
      .poll(
        async () => {
          const loaded = await prometheus.api<{
            groups: {
              rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[];
            }[];
          }>('/api/v1/rules');
          return (loaded.data?.groups ?? [])
            .flatMap((group) => group.rules)
            .map((rule) => ({
              name: rule.name,
              health: rule.health,
              lastError: rule.lastError ?? '',
              evaluated: !rule.lastEvaluation.startsWith('0001-'),
            }))
            .sort((a, b) => a.name.localeCompare(b.name));
        },
        { timeout: 30_000, interval: 500 },
      )
      .toEqual(
        rules
          .map((rule) => ({ name: rule.alert, health: 'ok', lastError: '', evaluated: true }))
          .sort((a, b) => a.name.localeCompare(b.name)),
      );
  });

  const alertStates = async (): Promise<Record<string, string>> => {
    const alerts = await prometheus.api<{
      alerts: { labels: { alertname: string }; state: string }[];
    }>('/api/v1/alerts');
    return Object.fromEntries(
      (alerts.data?.alerts ?? []).map((alert) => [alert.labels.alertname, alert.state]),
    );
  };

  it('raises KopekReconcileErrors while reconciles fail, and not KopekDown or KopekNoLeader', async () => {
    await expect
      .poll(async () => (await alertStates()).KopekReconcileErrors, { timeout: 30_000 })
      .toBe('pending');
    const states = await alertStates();
    expect(states.KopekDown).toBeUndefined();
    expect(states.KopekNoLeader).toBeUndefined();
    expect(states.KopekCacheStale).toBeUndefined();
  });

  it('raises KopekDown once no replica answers', async () => {
    for (const replica of replicas) await replica.process.stop();
    await expect
      .poll(async () => (await alertStates()).KopekDown, { timeout: 30_000 })
      .toBe('pending');
  });
});
