import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseRunConfig } from '../../operator/config.ts';
import { createLogger } from '../../operator/log.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { FakeAws } from '../aws/fake-aws.ts';
import { LocalMoto } from '../aws/moto.ts';
import type { LocalCluster } from '../cluster/cluster.ts';
import { KOPEK_CLI, scrape, startClusterForKopek } from '../support/kopek.ts';
import { expectNoSecretLeaks } from '../support/secrets.ts';

const WEB_IDENTITY_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.operator-irsa-token-must-not-leak.sig';

function deployment(name: string, instanceType: string, replicas: number): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop' },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          nodeSelector: { 'node.kubernetes.io/instance-type': instanceType },
          containers: [
            {
              name,
              image: 'registry.invalid/shop/app:1',
              resources: { requests: { cpu: '500m', memory: '512Mi' } },
              readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
            },
          ],
        },
      },
    },
  };
}

describe('kopek run with live AWS prices on a real cluster', () => {
  let dir: string;
  let moto: LocalMoto;
  let fake: FakeAws;
  let cluster: LocalCluster;
  let kubeconfig: string;
  let operator: RunningOperator;
  const logs: string[] = [];
  let answerPricing = (): void => undefined;

  const wrec = async (name: string): Promise<WorkloadRecommendation | undefined> => {
    const result = await cluster.kubectl(['get', 'wrec', name, '-n', 'shop', '-o', 'json'], {
      allowFailure: true,
    });
    return result.exitCode === 0
      ? (JSON.parse(result.stdout) as WorkloadRecommendation)
      : undefined;
  };
  /** The sum of a metric's samples that carry these labels. */
  const metric = async (name: string, labels: Record<string, string>): Promise<number> =>
    (await scrape(operator.metricsUrl))
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  /** Waits until kopek has made `n` more complete rounds of GetProducts (14 pages each). */
  const refreshes = async (n: number): Promise<void> => {
    const pages = (): number => fake.callsOf('GetProducts').filter((c) => c.status === 200).length;
    const target = pages() + 14 * n;
    await expect
      .poll(pages, { timeout: 120_000 * n, interval: 1000 })
      .toBeGreaterThanOrEqual(target);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-live-prices-'));
    moto = await LocalMoto.start(dir);
    fake = new FakeAws({ motoUrl: moto.url });
    await fake.start();
    cluster = await startClusterForKopek();
    // A node type with no price anywhere, for the one workload that must stay Unknown.
    await cluster.addFleet({
      region: 'us-east-1',
      pools: [
        {
          name: 'odd',
          instanceType: 'x9z.odd',
          arch: 'amd64',
          capacityType: 'on-demand',
          provisioner: 'karpenter',
          zones: ['us-east-1a', 'us-east-1b'],
          count: 2,
          cpu: '3920m',
          memory: '14Gi',
        },
      ],
    });
    await cluster.kubectl(['apply', '-f', '-'], {
      input: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
        deployment('on-m5', 'm5.xlarge', 3),
        deployment('on-m6i', 'm6i.xlarge', 3),
        deployment('on-odd', 'x9z.odd', 2),
      ]
        .map((object) => stringify(object))
        .join('---\n'),
    });
    await writeFile(join(dir, 'token'), WEB_IDENTITY_TOKEN);
    // As on EKS with IRSA: a projected token and a role; the SDK assumes it through STS (moto).
    Object.assign(process.env, {
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/kopek',
      AWS_ENDPOINT_URL_PRICING: fake.url,
      AWS_ENDPOINT_URL_EC2: fake.url,
      AWS_ENDPOINT_URL_STS: fake.url,
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
      AWS_CONFIG_FILE: '/nonexistent/config',
    });
    kubeconfig = await cluster.kubeconfigAsServiceAccount('kopek', 'kopek');
    // The Pricing API does not answer until the first test has seen the snapshot's recommendations.
    fake.pricingGate = new Promise((resolve) => {
      answerPricing = resolve;
    });
    const config = parseRunConfig(
      [
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        '127.0.0.1:0',
        '--metrics-secure=false',
        '--leader-elect',
        'false',
        '--batch-interval',
        '200ms',
        '--price-refresh-interval',
        '5s',
      ],
      {},
    );
    operator = await startOperator(config, {
      log: createLogger('info', (line) => logs.push(line)),
      imagePlatforms: { resolve: () => Promise.resolve({}) },
    });
  });

  afterAll(async () => {
    answerPricing();
    await operator.stop();
    await cluster.stop();
    await fake.stop();
    await moto.component.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts from the snapshot and switches every recommendation to live prices', async () => {
    // AWS has not answered yet: the first recommendations do not wait for it.
    await expect
      .poll(async () => (await wrec('deployment-on-m5'))?.status?.pricing?.source, {
        timeout: 120_000,
        interval: 500,
      })
      .toBe('Snapshot');
    expect(fake.callsOf('GetProducts').filter((c) => c.status === 200)).toHaveLength(0);
    answerPricing();
    fake.pricingGate = undefined;
    await expect
      .poll(async () => (await wrec('deployment-on-m5'))?.status?.pricing?.source, {
        timeout: 180_000,
        interval: 1000,
      })
      .toBe('Live');
    await expect
      .poll(async () => (await wrec('deployment-on-m6i'))?.status?.pricing?.source, {
        timeout: 30_000,
      })
      .toBe('Live');
  }, 360_000);

  it('moves the money of the workloads on a type whose price moved, and rewrites only those', async () => {
    await refreshes(1);
    const m5Before = await wrec('deployment-on-m5');
    const m6iBefore = await wrec('deployment-on-m6i');
    fake.prices.set('m5.xlarge', { usd: 0.288, effectiveDate: '2026-12-01T00:00:00Z' });
    await expect
      .poll(async () => (await wrec('deployment-on-m5'))?.status?.pricing?.asOf, {
        timeout: 180_000,
        interval: 1000,
      })
      .toBe('2026-12-01T00:00:00Z');
    const m5After = await wrec('deployment-on-m5');
    // 3 pods of 0.5 vCPU and 0.5 GiB on an m5.xlarge: their share of 0.192 → 0.288 per hour.
    expect(Number(m5After?.status?.monthlyCostUSD)).toBeCloseTo(
      Number(m5Before?.status?.monthlyCostUSD) * 1.5,
      1,
    );
    await refreshes(1);
    const m6iAfter = await wrec('deployment-on-m6i');
    expect(m6iAfter?.metadata.resourceVersion).toBe(m6iBefore?.metadata.resourceVersion);
    expect(m6iAfter?.status?.pricing?.asOf).toBe('2026-07-20T00:00:00Z');
  }, 480_000);

  it('names a missing IAM action once, in a log line and a condition, and keeps working', async () => {
    fake.denied.add('GetSpotPlacementScores');
    await expect
      .poll(
        async () =>
          (await wrec('deployment-on-m6i'))?.status?.conditions?.find(
            (c) => c.type === 'LivePrices',
          ),
        { timeout: 180_000, interval: 1000 },
      )
      .toMatchObject({
        status: 'False',
        reason: 'AccessDenied',
        message: expect.stringContaining('ec2:GetSpotPlacementScores') as unknown,
      });
    await refreshes(1);
    expect(logs.filter((line) => line.includes('denied ec2:GetSpotPlacementScores'))).toHaveLength(
      1,
    );
    fake.denied.delete('GetSpotPlacementScores');
    await expect
      .poll(async () => (await wrec('deployment-on-m6i'))?.status?.conditions?.map((c) => c.type), {
        timeout: 180_000,
        interval: 1000,
      })
      .toEqual(['Ready']);
  }, 600_000);

  it('keeps the last good prices while AWS is unreachable, without crashing; Unknown only without any price', async () => {
    const before = await wrec('deployment-on-m5');
    await fake.stop();
    await moto.component.stop();
    await expect
      .poll(
        () => metric('kopek_aws_errors_total', { call: 'GetProducts', reason: 'Unavailable' }),
        {
          timeout: 180_000,
          interval: 1000,
        },
      )
      .toBeGreaterThanOrEqual(2);
    const after = await wrec('deployment-on-m5');
    expect(after?.status?.pricing).toEqual(before?.status?.pricing);
    expect(after?.status?.monthlyCostUSD).toBe(before?.status?.monthlyCostUSD);
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
    const all = JSON.parse(
      (await cluster.kubectl(['get', 'wrec', '-n', 'shop', '-o', 'json'])).stdout,
    ) as { items: WorkloadRecommendation[] };
    const unknown = all.items
      .filter((item) => item.status?.spot?.verdict === 'Unknown')
      .map((item) => item.metadata.name);
    expect(unknown).toEqual(['deployment-on-odd']);
    expect(
      all.items
        .find((item) => item.metadata.name === 'deployment-on-odd')
        ?.status?.spot?.reasons?.map((r) => r.code),
    ).toContain('NoPrice');
    const state = await Promise.race([
      operator.done,
      new Promise((resolve) =>
        setTimeout(() => {
          resolve('running');
        }, 100),
      ),
    ]);
    expect(state).toBe('running');
    expect(await metric('kopek_prices_age_seconds', { source: 'live' })).toBeGreaterThan(0);
  }, 240_000);

  it('shows no token or AWS secret in logs, recommendations or metrics', async () => {
    expect(fake.secrets.length).toBeGreaterThan(0);
    expect(logs.length).toBeGreaterThan(0);
    await expectNoSecretLeaks({
      secrets: [WEB_IDENTITY_TOKEN, ...fake.secrets],
      logs,
      metrics: [await (await fetch(`${operator.metricsUrl}/metrics`)).text()],
      cluster,
    });
  });

  it('without AWS credentials: says so, prices from the snapshot, and exits 0 on SIGTERM', async () => {
    await operator.stop();
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
      AWS_CONFIG_FILE: '/nonexistent/config',
    };
    const child = spawn(
      process.execPath,
      [
        KOPEK_CLI,
        'run',
        '--kubeconfig',
        kubeconfig,
        '--metrics-bind-address',
        '127.0.0.1:0',
        '--metrics-secure=false',
        '--leader-elect',
        'false',
        '--batch-interval',
        '200ms',
      ],
      { env },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await expect
        .poll(async () => (await wrec('deployment-on-m5'))?.status?.pricing?.source, {
          timeout: 120_000,
          interval: 1000,
        })
        .toBe('Snapshot');
      await expect.poll(() => stderr, { timeout: 60_000 }).toContain('no AWS credentials');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 240_000);
});
