import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { CrossZoneResult, WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import type { CliIO } from '../../operator/cli/input.ts';
import { main } from '../../operator/cli/kopek.ts';
import { parseRunConfig } from '../../operator/config.ts';
import { createLogger } from '../../operator/log.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import { rfc3339 } from '../../operator/time.ts';
import type { LocalCluster } from '../cluster/cluster.ts';
import { LocalPrometheus } from '../prometheus/prometheus.ts';
import { startClusterForKopek } from '../support/kopek.ts';
import { freePort } from '../support/ports.ts';
import { expectNoSecretLeaks } from '../support/secrets.ts';
import { FreezableProxy } from '../support/tcp-proxy.ts';
import { until } from '../support/until.ts';
import { TrafficExporter } from '../traffic/exporter.ts';
import { beylaSeries, istioSeries, kubecostSeries, type ChattyEdge } from '../traffic/scenario.ts';

/**
 * Cross-zone traffic measured end to end: an exporter serves the series Grafana Beyla, Istio
 * and Kubecost would expose for three chatty edges, with counters growing at known rates; a
 * real Prometheus scrapes it; kopek reads Prometheus's HTTP API (the operator, and kopek
 * analyze offline) and writes bytes and dollars we check by hand against the counters' growth.
 */

const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
/** r, in GiB an hour, per client zone and server pod (see test/traffic/scenario.ts). */
const shop = (name: string) => ({ namespace: 'shop', name });
const EDGES: ChattyEdge[] = [
  { client: shop('web'), server: shop('checkout'), requestGiBPerHour: 0.25 },
  { client: shop('checkout'), server: shop('payments'), requestGiBPerHour: 0.1, tcp: true },
  { client: shop('web'), server: shop('catalog'), requestGiBPerHour: 0.05 },
];
/** The window kopek reads over: short, so the test's Prometheus soon holds all of it. */
const WINDOW = '10s';

function workloads(): string {
  const deployment = (name: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop' },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          // One pod per zone, so Istio's cross-zone share of every edge here is 2/3.
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'topology.kubernetes.io/zone',
              whenUnsatisfiable: 'DoNotSchedule',
              labelSelector: { matchLabels: { app: name } },
            },
          ],
          containers: [
            {
              name,
              // Nothing answers there: arm64 stays Unknown, which this test does not read.
              image: `127.0.0.1:1/shop/${name}:1`,
              resources: { requests: { cpu: '250m', memory: '256Mi' } },
            },
          ],
        },
      },
    },
  });
  const service = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'shop' },
    spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] },
  });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
    deployment('web'),
    ...['checkout', 'payments', 'catalog'].flatMap((name) => [deployment(name), service(name)]),
  ]
    .map((object) => stringify(object))
    .join('---\n');
}

function isReady(pod: { status: { conditions?: { type: string; status: string }[] } }): boolean {
  return pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

describe('cross-zone traffic measured from Prometheus (Beyla, Istio, Kubecost)', () => {
  let dir: string;
  let cluster: LocalCluster;
  let exporter: TrafficExporter;
  let prometheus: LocalPrometheus;
  let prometheusPort: number;
  let proxy: FreezableProxy;
  let operator: RunningOperator;
  /** Sent to Prometheus with every query (it ignores it); must never leave kopek. */
  const prometheusToken = randomBytes(24).toString('base64url');
  const logLines: string[] = [];
  const prometheusConfig = (): Record<string, unknown> => ({
    global: { scrape_interval: '1s' },
    scrape_configs: [{ job_name: 'telemetry', static_configs: [{ targets: [exporter.target] }] }],
  });
  const startPrometheus = async (): Promise<LocalPrometheus> => {
    const started = await LocalPrometheus.start({
      dir,
      config: prometheusConfig(),
      port: prometheusPort,
    });
    // Prometheus divides the counters' growth by the whole window: wait until it holds all of it.
    await until(
      `Prometheus holds ${WINDOW} of scrapes`,
      async () =>
        Number(
          (await started.query(`count_over_time(up{job="telemetry"}[${WINDOW}])`)).data?.result[0]
            ?.value[1] ?? 0,
        ),
      (scrapes) => scrapes >= 10,
    );
    return started;
  };

  const crossZone = async (name: string): Promise<CrossZoneResult | undefined> => {
    const result = await cluster.kubectl(['get', 'wrec', name, '-n', 'shop', '-o', 'json'], {
      allowFailure: true,
    });
    return result.exitCode === 0
      ? (JSON.parse(result.stdout) as WorkloadRecommendation).status?.crossZone
      : undefined;
  };
  const metric = async (pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => pattern.test(line))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-traffic-'));
    cluster = await startClusterForKopek();
    await cluster.kubectl(['apply', '-f', '-'], { input: workloads() });
    // Every pod scheduled and ready (KWOK), so Kubecost's series can name real pods.
    let pods: { metadata: { name: string; labels: { app: string } } }[] = [];
    await until(
      'the 12 pods are ready',
      async () => {
        const list = JSON.parse(
          (await cluster.kubectl(['get', 'pods', '-n', 'shop', '-o', 'json'])).stdout,
        ) as {
          items: {
            metadata: { name: string; labels: { app: string } };
            status: { conditions?: { type: string; status: string }[] };
          }[];
        };
        pods = list.items;
        return list.items.filter(isReady).length;
      },
      (ready) => ready === 12,
      120_000,
    );
    const podsOf = (_namespace: string, workload: string): string[] => [
      ...pods.filter((pod) => pod.metadata.labels.app === workload).map((p) => p.metadata.name),
      // A pod of the window that is gone now: kopek ties it to checkout by its name.
      ...(workload === 'checkout' ? ['checkout-6c7d8e9f1-zzzzz'] : []),
    ];
    exporter = await TrafficExporter.start([
      ...beylaSeries(EDGES, ZONES),
      ...istioSeries(EDGES, ZONES),
      ...kubecostSeries(EDGES, ZONES, podsOf),
    ]);
    prometheusPort = await freePort();
    prometheus = await startPrometheus();
    proxy = new FreezableProxy(prometheusPort);
    await proxy.start();

    const tokenFile = join(dir, 'prometheus-token');
    await writeFile(tokenFile, `${prometheusToken}\n`);
    const config = parseRunConfig(
      [
        `--kubeconfig=${await cluster.kubeconfigAsServiceAccount('kopek', 'kopek')}`,
        '--metrics-bind-address=127.0.0.1:0',
        '--metrics-secure=false',
        '--leader-election-namespace=kopek',
        '--batch-interval=200ms',
        `--prometheus-url=http://127.0.0.1:${proxy.port}`,
        `--prometheus-bearer-token-file=${tokenFile}`,
        `--traffic-window=${WINDOW}`,
        '--traffic-refresh-interval=1s',
        '--prometheus-timeout=2s',
      ],
      {},
    );
    // Every line kopek logs, down to debug, for the secret-leak scan.
    operator = await startOperator(config, {
      log: createLogger('debug', (line) => logLines.push(line)),
    });
  });

  afterAll(async () => {
    await operator.stop();
    await proxy.stop();
    await prometheus.stop();
    await exporter.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Waits until checkout's recommendation shows the measured bytes of its edge with web. */
  const measuredAgain = () =>
    expect
      .poll(async () => (await crossZone('deployment-checkout'))?.monthlyCostUSD, {
        timeout: 60_000,
        interval: 500,
      })
      .toBe('43.80');

  it("prices each edge from Beyla's zone pairs, once, at its server side", async () => {
    await measuredAgain();
    // web → checkout, r = 0.25 GiB/h: per client zone r + 3r cross, three zones: 12r = 3 GiB/h;
    // × 730 h = 2190 GiB a month; × $0.02 = $43.80. web has no Service: checkout serves.
    const checkout = await crossZone('deployment-checkout');
    expect(checkout).toMatchObject({
      source: 'Measured',
      monthlyCrossZoneGB: '2190',
      monthlyCostUSD: '43.80',
      // Clients in every zone, an endpoint in every zone: the fix keeps all of it in-zone.
      verdict: 'Recommended',
      monthlySavingsUSD: '43.80',
      edges: [
        {
          peer: { namespace: 'shop', kind: 'Deployment', name: 'web' },
          monthlyCrossZoneGB: '2190',
          monthlyCostUSD: '43.80',
        },
      ],
    });
    const reason = checkout?.reasons?.find((r) => r.code === 'MeasuredTraffic')?.message;
    expect(reason).toMatch(/^Grafana Beyla measured 2190 GB a month crossing zones/);
    expect(reason).toContain(`over the last ${WINDOW}, scaled to a 730-hour month`);
    // checkout → payments, r = 0.1: 12r = 1.2 GiB/h × 730 = 876 GiB, $17.52. Both ends have a
    // Service; payments sends 3r for checkout's r, so payments is the server and pays.
    expect(await crossZone('deployment-payments')).toMatchObject({
      monthlyCrossZoneGB: '876',
      monthlyCostUSD: '17.52',
      monthlySavingsUSD: '17.52',
      edges: [{ peer: { name: 'checkout' }, monthlyCostUSD: '17.52' }],
    });
    // web → catalog, r = 0.05: 0.6 GiB/h × 730 = 438 GiB, $8.76: under the policy's $10.
    expect(await crossZone('deployment-catalog')).toMatchObject({
      monthlyCrossZoneGB: '438',
      monthlyCostUSD: '8.76',
      verdict: 'NotRecommended',
      monthlySavingsUSD: '0.00',
    });
    // web is the client of two edges: counted at checkout and catalog, never again at web.
    const web = await crossZone('deployment-web');
    expect(web?.verdict).toBe('NotApplicable');
    expect(web?.monthlyCrossZoneGB).toBeUndefined();
    expect(web?.edges).toBeUndefined();
  });

  it('exports the monthly bytes and the largest edges, reading Prometheus once per refresh', async () => {
    await measuredAgain();
    expect(await metric(/^kopek_workload_cross_zone_bytes_monthly\{[^}]*name="checkout"/)).toBe(
      2190 * 2 ** 30,
    );
    expect(
      await metric(
        /^kopek_workload_cross_zone_edge_monthly_cost_usd\{[^}]*name="checkout".*peer_name="web"/,
      ),
    ).toBe(43.8);
    expect(await metric(/^kopek_workload_cross_zone_monthly_cost_usd\{[^}]*name="payments"/)).toBe(
      17.52,
    );
    // Both counters from one scrape; source queries only (detection is checked below).
    const counters = async (): Promise<{ queries: number; refreshes: number }> => {
      const lines = (await (await fetch(`${operator.metricsUrl}/metrics`)).text()).split('\n');
      const sum = (pattern: RegExp): number =>
        lines
          .filter((line) => pattern.test(line))
          .reduce((total, line) => total + Number(line.split(' ').pop()), 0);
      return {
        queries: sum(/^kopek_traffic_queries_total\{(?![^}]*source="detect")/),
        refreshes: sum(/^kopek_traffic_refreshes_total\{/),
      };
    };
    const before = await counters();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const after = await counters();
    const refreshes = after.refreshes - before.refreshes;
    expect(refreshes).toBeGreaterThanOrEqual(2);
    // One query per refresh, whatever the workloads. A refresh counts its query when Prometheus
    // answers and itself a moment later, so one in flight at either scrape shifts the difference
    // by one; a query per workload would add dozens.
    expect(Math.abs(after.queries - before.queries - refreshes)).toBeLessThanOrEqual(1);
    expect(await metric(/^kopek_traffic_queries_total\{source="detect"/)).toBeLessThanOrEqual(2);
  });

  it('uses the estimate while Prometheus is slow, and measures again when it answers', async () => {
    await measuredAgain();
    proxy.freeze();
    await expect
      .poll(
        async () =>
          (await crossZone('deployment-checkout'))?.reasons?.find(
            (r) => r.code === 'TrafficTelemetryUnavailable',
          )?.message,
        { timeout: 30_000, interval: 500 },
      )
      .toMatch(/Prometheus at http:\/\/127\.0\.0\.1:\d+ did not answer within 2 s/);
    expect((await crossZone('deployment-checkout'))?.source).toBe('Estimated');
    proxy.thaw();
    await measuredAgain();
  });

  it('uses the estimate while Prometheus is stopped, and measures again after it returns', async () => {
    await measuredAgain();
    await prometheus.stop();
    const unavailable = async () =>
      (await crossZone('deployment-checkout'))?.reasons?.find(
        (r) => r.code === 'TrafficTelemetryUnavailable',
      )?.message;
    await expect
      .poll(unavailable, { timeout: 30_000, interval: 500 })
      .toMatch(/^Traffic telemetry could not be read \(could not reach Prometheus/);
    expect((await crossZone('deployment-checkout'))?.source).toBe('Estimated');
    expect((await fetch(`${operator.metricsUrl}/healthz`)).status).toBe(200);
    expect(await metric(/^kopek_source_errors_total\{source="prometheus"\}/)).toBeGreaterThan(0);
    prometheus = await startPrometheus();
    await measuredAgain();
    expect(await crossZone('deployment-payments')).toMatchObject({ monthlyCostUSD: '17.52' });
  });

  it('never shows its Prometheus token in its logs, objects, events or metrics, through slow and stopped Prometheus', async () => {
    expect(logLines.length).toBeGreaterThan(0);
    await expectNoSecretLeaks({
      secrets: [prometheusToken],
      logs: logLines,
      metrics: [await (await fetch(`${operator.metricsUrl}/metrics`)).text()],
      cluster,
    });
  });

  describe('kopek analyze --prometheus-url, offline over a dump of the cluster', () => {
    let dump: string;
    const analyze = async (
      flags: string[],
    ): Promise<{ code: number; stderr: string; byName: Map<string, CrossZoneResult> }> => {
      let stdout = '';
      let stderr = '';
      const io: CliIO = {
        stdout: (text) => (stdout += text),
        stderr: (text) => (stderr += text),
        readFile: () => '',
        readStdin: () => '',
        now: () => rfc3339(new Date()),
        env: {},
      };
      io.readFile = () => dump;
      const code = await main(['analyze', '-f', 'dump.json', '-o', 'json', ...flags], io);
      const list = JSON.parse(stdout || '{"items":[]}') as { items: WorkloadRecommendation[] };
      const byName = new Map(
        list.items.map((item) => [item.spec.targetRef.name, item.status?.crossZone ?? {}] as const),
      ) as Map<string, CrossZoneResult>;
      return { code, stderr, byName };
    };

    beforeAll(async () => {
      const path = join(dir, 'dump.json');
      await writeFile(
        path,
        (
          await cluster.kubectl([
            'get',
            'nodes,pods,deployments,replicasets,services,endpointslices',
            '-A',
            '-o',
            'json',
          ])
        ).stdout,
      );
      dump = await readFile(path, 'utf8');
    });

    const url = () => `--prometheus-url=${prometheus.url}`;

    it("prices Istio's workload edges with the share from where the pods run", async () => {
      const { code, byName } = await analyze([
        url(),
        '--traffic-source=istio',
        `--traffic-window=${WINDOW}`,
      ]);
      expect(code).toBe(0);
      // web → checkout: bodies 6r + 18r = 24r = 6 GiB/h (reported by both proxies, counted
      // once). web and checkout run one pod per zone: 1 − 3·(1/3·1/3) = 2/3 crosses = 4 GiB/h
      // × 730 = 2920 GiB, $58.40.
      expect(byName.get('checkout')).toMatchObject({
        source: 'Measured',
        monthlyCrossZoneGB: '2920',
        monthlyCostUSD: '58.40',
        edges: [{ peer: { name: 'web' }, monthlyCostUSD: '58.40' }],
      });
      expect(
        byName.get('checkout')?.reasons?.find((r) => r.code === 'MeasuredTraffic')?.message,
      ).toMatch(
        /^Istio measured 4380 GB a month between it and its clients .* 2920 GB of it crosses zones, a share estimated for each edge from where the two workloads' pods run/,
      );
      // checkout → payments over TCP: 24r = 2.4 GiB/h × 2/3 = 1.6 GiB/h × 730 = 1168 GiB, $23.36.
      expect(byName.get('payments')).toMatchObject({
        monthlyCrossZoneGB: '1168',
        monthlyCostUSD: '23.36',
      });
      // web → catalog: 24r = 1.2 GiB/h × 2/3 = 0.8 GiB/h × 730 = 584 GiB, $11.68.
      expect(byName.get('catalog')).toMatchObject({
        monthlyCrossZoneGB: '584',
        monthlyCostUSD: '11.68',
      });
    });

    it("prices Kubecost's pod egress at the pods' workloads", async () => {
      const { code, byName } = await analyze([
        url(),
        '--traffic-source=kubecost',
        `--traffic-window=${WINDOW}`,
      ]);
      expect(code).toBe(0);
      // checkout's pods (three running, one gone) sent 9r = 2.25 GiB/h of responses to web's
      // other zones and 3r' = 0.3 GiB/h of requests to payments': 2.55 GiB/h × 730 =
      // 1861.5 GiB, $37.23. Its in-zone egress (same_zone="true") is left out.
      expect(byName.get('checkout')).toMatchObject({
        source: 'Measured',
        monthlyCrossZoneGB: '1861.5',
        monthlyCostUSD: '37.23',
      });
      // web, a client only: 3·0.25 + 3·0.05 = 0.9 GiB/h × 730 = 657 GiB, $13.14.
      expect(byName.get('web')).toMatchObject({
        verdict: 'NotApplicable',
        monthlyCrossZoneGB: '657',
        monthlyCostUSD: '13.14',
      });
      // catalog: 9 · 0.05 = 0.45 GiB/h × 730 = 328.5 GiB, $6.57.
      expect(byName.get('catalog')).toMatchObject({ monthlyCostUSD: '6.57' });
    });

    it('says why it estimates when the query is refused, and exits 0', async () => {
      const { code, stderr, byName } = await analyze([
        url(),
        '--traffic-source=beyla',
        '--traffic-query-beyla=sum by (',
      ]);
      expect(code).toBe(0);
      expect(stderr).toMatch(
        /warning: traffic: Prometheus at .* answered HTTP 400: bad_data: .*cross-zone shares are estimated/,
      );
      expect(byName.get('checkout')).toMatchObject({ source: 'Estimated' });
      expect(
        byName.get('checkout')?.reasons?.find((r) => r.code === 'TrafficTelemetryUnavailable')
          ?.message,
      ).toContain('bad_data');
    });

    it('refuses partial data (a remote store that failed) and estimates', async () => {
      const partialDir = await mkdtemp(join(tmpdir(), 'kopek-traffic-partial-'));
      const partial = await LocalPrometheus.start({
        dir: partialDir,
        config: {
          ...prometheusConfig(),
          remote_read: [{ url: `http://127.0.0.1:${await freePort()}/read`, read_recent: true }],
        },
      });
      try {
        const { code, stderr, byName } = await analyze([`--prometheus-url=${partial.url}`]);
        expect(code).toBe(0);
        expect(stderr).toMatch(/warning: traffic: partial data: remote_read: .*connection refused/);
        expect(byName.get('checkout')).toMatchObject({ source: 'Estimated' });
      } finally {
        await partial.stop();
        await rm(partialDir, { recursive: true, force: true });
      }
    });
  });
});
