import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../operator/config.ts';
import { createLogger } from '../../operator/log.ts';
import { selfSignedCertificate } from '../../operator/metrics-tls.ts';
import { systemClock } from '../../operator/clock.ts';
import { startOperator, type RunningOperator } from '../../operator/run.ts';
import type { LocalCluster } from '../cluster/cluster.ts';
import {
  getMetricsPath,
  metricsReaderToken,
  scrape,
  serviceAccountToken,
  startClusterForKopek,
  type ScrapeCredentials,
} from '../support/kopek.ts';
import { expectNoSecretLeaks } from '../support/secrets.ts';

/**
 * The scrape matrix against a real API server: kopek asks it about every scraper (TokenReview,
 * SubjectAccessReview), with the chart's RBAC on both sides.
 */
describe("kopek's metrics behind authentication and authorization", () => {
  let cluster: LocalCluster;
  let operator: RunningOperator;
  let scraperToken: string;
  let otherToken: string;
  let dir: string;
  const logLines: string[] = [];
  const scrapes: string[] = [];

  const start = async (extra: string[] = []): Promise<RunningOperator> =>
    startOperator(
      parseRunConfig(
        [
          '--kubeconfig',
          await cluster.kubeconfigAsServiceAccount('kopek', 'kopek'),
          '--metrics-bind-address',
          '127.0.0.1:0',
          '--leader-elect',
          'false',
          ...extra,
        ],
        {},
      ),
      { log: createLogger('debug', (line) => logLines.push(line)) },
    );
  const get = async (path: string, credentials: ScrapeCredentials = {}) => {
    const answer = await getMetricsPath(operator.metricsUrl, path, {
      ...(operator.metricsCertificate ? { ca: operator.metricsCertificate } : {}),
      ...credentials,
    });
    if (path === '/metrics') scrapes.push(answer.text);
    return answer;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-metrics-auth-'));
    cluster = await startClusterForKopek();
    scraperToken = await metricsReaderToken(cluster, 'monitoring', 'prometheus');
    await cluster.kubectl(['create', 'namespace', 'shop']);
    await cluster.kubectl(['create', 'serviceaccount', 'web', '-n', 'shop']);
    otherToken = await serviceAccountToken(cluster, 'shop', 'web');
    operator = await start();
  });

  afterAll(async () => {
    await operator.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS by default, with a certificate for the address it listens on', () => {
    expect(operator.metricsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(operator.metricsCertificate).toContain('BEGIN CERTIFICATE');
  });

  it('answers 401 without a token, and to a token the API server does not know', async () => {
    const anonymous = await get('/metrics');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="kopek"');
    expect((await get('/metrics', { token: 'not-a-real-token-at-all' })).status).toBe(401);
  });

  it('answers 403 to a ServiceAccount without get on /metrics, naming it', async () => {
    const other = await get('/metrics', { token: otherToken });
    expect(other.status).toBe(403);
    expect(other.text).toContain('system:serviceaccount:shop:web');
  });

  it("answers 200 to a ServiceAccount bound to the chart's metrics-reader rules", async () => {
    const allowed = await get('/metrics', { token: scraperToken });
    expect(allowed.status).toBe(200);
    expect(allowed.text).toContain('kopek_cache_objects');
  });

  it('keeps /healthz and /readyz open', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
  });

  it('asks the API server once per token per minute, not on every scrape', async () => {
    const reviews = async (): Promise<number> =>
      (
        await scrape(operator.metricsUrl, {
          token: scraperToken,
          ca: operator.metricsCertificate ?? '',
        })
      )
        .filter(
          (s) =>
            s.name === 'kopek_kube_requests_total' &&
            s.labels.verb === 'create' &&
            (s.labels.resource === 'tokenreviews' || s.labels.resource === 'subjectaccessreviews'),
        )
        .reduce((total, s) => total + s.value, 0);
    const before = await reviews();
    // Each token above was reviewed once (the unknown one has no SubjectAccessReview).
    expect(before).toBe(5);
    for (let i = 0; i < 5; i++) await get('/metrics', { token: scraperToken });
    expect(await reviews()).toBe(before);
  });

  it('refuses plain HTTP on the metrics port', async () => {
    await expect(
      fetch(`${operator.metricsUrl.replace('https:', 'http:')}/metrics`),
    ).rejects.toThrow();
  });

  it('serves the certificate of a mounted Secret instead when given --metrics-cert-dir', async () => {
    const certDir = join(dir, 'certs');
    await mkdir(certDir);
    const pair = selfSignedCertificate(['127.0.0.1'], systemClock);
    await writeFile(join(certDir, 'tls.crt'), pair.cert);
    await writeFile(join(certDir, 'tls.key'), pair.key);
    const withSecret = await start(['--metrics-cert-dir', certDir]);
    try {
      expect(withSecret.metricsCertificate).toBe(pair.cert);
      const answer = await getMetricsPath(withSecret.metricsUrl, '/metrics', {
        ca: pair.cert,
        token: scraperToken,
      });
      expect(answer.status).toBe(200);
      scrapes.push(answer.text);
      // The certificate made at start is not trusted for this one.
      await expect(
        getMetricsPath(withSecret.metricsUrl, '/healthz', {
          ca: operator.metricsCertificate ?? '',
        }),
      ).rejects.toThrow();
    } finally {
      await withSecret.stop();
    }
  });

  it('never shows a scraper token in its logs, objects, events or metrics', async () => {
    expect(logLines.length).toBeGreaterThan(0);
    await expectNoSecretLeaks({
      secrets: [scraperToken, otherToken, 'not-a-real-token-at-all'],
      logs: logLines,
      metrics: scrapes,
      cluster,
    });
  });
});
