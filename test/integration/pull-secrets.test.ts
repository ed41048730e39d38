import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseRunConfig } from '../../operator/config.ts';
import { createLogger } from '../../operator/log.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { LocalRegistry, writeHtpasswd } from '../registry/registry.ts';
import { pushIndex } from '../registry/seed.ts';
import { getMetricsPath, startClusterForKopek } from '../support/kopek.ts';
import { expectNoSecretLeaks } from '../support/secrets.ts';

const USER = 'puller';
const PASSWORD = 'pa55-w0rd-never-logged';

describe('kopek run reads private images with the pull secrets pods name', () => {
  let dir: string;
  let registry: LocalRegistry;
  let cluster: LocalCluster;
  let operator: RunningOperator;
  const logLines: string[] = [];

  const arm64 = async (): Promise<
    { verdict?: string; reasons?: { code: string; message: string }[] } | undefined
  > => {
    const result = await cluster.kubectl(
      ['get', 'wrec', 'deployment-private', '-n', 'shop', '-o', 'json'],
      { allowFailure: true },
    );
    return result.exitCode === 0
      ? (
          JSON.parse(result.stdout) as {
            status?: {
              arm64?: { verdict?: string; reasons?: { code: string; message: string }[] };
            };
          }
        ).status?.arm64
      : undefined;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-pull-secrets-'));
    const htpasswd = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, USER, PASSWORD);
    registry = await LocalRegistry.start({
      dir,
      name: 'private-registry',
      auth: { kind: 'htpasswd', path: htpasswd },
    });
    const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    await pushIndex(
      { url: registry.url, authorize: () => basic },
      'private/app',
      '1',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
      'oci',
    );

    cluster = await startClusterForKopek();
    // What the chart adds when registry.readPullSecrets is enabled.
    await cluster.kubectl([
      'create',
      'clusterrole',
      'kopek-pull-secrets',
      '--verb=get',
      '--resource=secrets',
    ]);
    await cluster.kubectl([
      'create',
      'clusterrolebinding',
      'kopek-pull-secrets',
      '--clusterrole=kopek-pull-secrets',
      '--serviceaccount=kopek:kopek',
    ]);
    await cluster.kubectl(['create', 'namespace', 'shop']);
    await cluster.kubectl([
      'create',
      'secret',
      'docker-registry',
      'regcred',
      '-n',
      'shop',
      `--docker-server=${registry.host}`,
      `--docker-username=${USER}`,
      `--docker-password=${PASSWORD}`,
    ]);
    await cluster.kubectl(['apply', '-f', '-'], {
      input: stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'private', namespace: 'shop' },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'private' } },
          template: {
            metadata: { labels: { app: 'private' } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: `${registry.host}/private/app:1`,
                  resources: { requests: { cpu: '500m', memory: '512Mi' } },
                },
              ],
            },
          },
        },
      }),
    });
    const config = parseRunConfig(
      [
        '--kubeconfig',
        await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
        '--metrics-bind-address',
        '127.0.0.1:0',
        '--metrics-secure',
        'false',
        '--leader-elect',
        'false',
        '--batch-interval',
        '200ms',
        '--read-pull-secrets',
        'true',
        '--insecure-registries',
        registry.host,
      ],
      {},
    );
    operator = await startOperator(config, {
      log: createLogger('debug', (line) => logLines.push(line)),
    });
  });

  afterAll(async () => {
    await operator.stop();
    await cluster.stop();
    await registry.component.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is Unknown for an authentication failure while the pod names no pull secret', async () => {
    await expect.poll(async () => (await arm64())?.verdict, { timeout: 30_000 }).toBe('Unknown');
    const reason = (await arm64())?.reasons?.find((r) => r.code === 'ImagePlatformsUnreadable');
    expect(reason?.message).toContain('authentication failed');
  });

  it('resolves the image once the pod names its pull secret', async () => {
    await cluster.kubectl([
      'patch',
      'deployment/private',
      '-n',
      'shop',
      '--type=merge',
      '-p',
      '{"spec":{"template":{"spec":{"imagePullSecrets":[{"name":"regcred"}]}}}}',
    ]);
    await expect
      .poll(async () => (await arm64())?.verdict, { timeout: 30_000 })
      .toBe('Recommended');
  });

  it('never shows the credentials in a log line, recommendation, policy, event or metric', async () => {
    expect(logLines.length).toBeGreaterThan(0);
    await expectNoSecretLeaks({
      secrets: [PASSWORD, `${USER}:${PASSWORD}`],
      logs: logLines,
      metrics: [(await getMetricsPath(operator.metricsUrl, '/metrics')).text],
      cluster,
    });
  });
});
