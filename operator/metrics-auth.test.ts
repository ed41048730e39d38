import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { describe, expect, it } from 'vitest';
import { apiError, FakeKube } from './testing/fake-kube.ts';
import { memoryLog } from './testing/harness.ts';
import { ManualClock } from './testing/manual-clock.ts';
import { MetricsAuthorizer, SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS } from './metrics-auth.ts';
import { selfSignedCertificate, watchCertificateDir, type CertificatePair } from './metrics-tls.ts';
import { createMetrics, startMetricsServer } from './metrics.ts';

const SCRAPER = 'system:serviceaccount:monitoring:prometheus';
const TOKENS: Record<string, string> = {
  'scraper-token': SCRAPER,
  'other-token': 'system:serviceaccount:shop:web',
};

/** An API that knows two tokens and lets only the scraper get /metrics. */
function reviewingKube(): FakeKube {
  const kube = new FakeKube();
  kube.answerReviews(TOKEN_REVIEWS, (spec) => {
    const user = TOKENS[String(spec.token)];
    return user === undefined
      ? { authenticated: false, error: 'invalid bearer token' }
      : {
          authenticated: true,
          user: { username: user, uid: `uid-${user}`, groups: ['system:serviceaccounts'] },
        };
  });
  kube.answerReviews(SUBJECT_ACCESS_REVIEWS, (spec) => {
    const attributes = spec.nonResourceAttributes as { path?: string; verb?: string } | undefined;
    return {
      allowed:
        spec.user === SCRAPER && attributes?.path === '/metrics' && attributes.verb === 'get',
    };
  });
  return kube;
}

function authorizer(kube: FakeKube, clock = new ManualClock(), log = memoryLog()) {
  return new MetricsAuthorizer({ client: kube, clock, log, ttlMs: 60_000 });
}

describe('who may read /metrics', () => {
  it('asks for a bearer token without calling the API server', async () => {
    const kube = reviewingKube();
    const auth = authorizer(kube);
    expect(await auth.authorize(undefined)).toMatchObject({ status: 401 });
    expect(await auth.authorize('Basic dXNlcjpwYXNz')).toMatchObject({ status: 401 });
    expect(kube.calls).toEqual([]);
  });

  it('refuses a token the API server does not know (401) before asking about access', async () => {
    const kube = reviewingKube();
    expect(await authorizer(kube).authorize('Bearer forged')).toMatchObject({ status: 401 });
    expect(kube.count('create', 'tokenreviews')).toBe(1);
    expect(kube.count('create', 'subjectaccessreviews')).toBe(0);
  });

  it('refuses an account without get on /metrics (403), naming it, and lets the scraper in (200)', async () => {
    const kube = reviewingKube();
    const auth = authorizer(kube);
    const other = await auth.authorize('Bearer other-token');
    expect(other.status).toBe(403);
    expect(other.message).toContain('system:serviceaccount:shop:web');
    expect(await auth.authorize('Bearer scraper-token')).toMatchObject({ status: 200 });
  });

  it('reuses an answer for one TTL, then asks again', async () => {
    const kube = reviewingKube();
    const clock = new ManualClock();
    const auth = authorizer(kube, clock);
    for (let i = 0; i < 4; i++) await auth.authorize('Bearer scraper-token');
    await auth.authorize('Bearer other-token');
    expect(kube.count('create', 'tokenreviews')).toBe(2);
    expect(kube.count('create', 'subjectaccessreviews')).toBe(2);
    await clock.advance(60_001);
    expect(await auth.authorize('Bearer scraper-token')).toMatchObject({ status: 200 });
    expect(kube.count('create', 'tokenreviews')).toBe(3);
  });

  it('answers 503 while the API server cannot be asked, and does not remember the failure', async () => {
    const kube = reviewingKube();
    const log = memoryLog();
    const auth = authorizer(kube, new ManualClock(), log);
    kube.failNext({ verb: 'create', resource: 'tokenreviews' }, apiError(500, 'InternalError'));
    expect(await auth.authorize('Bearer scraper-token')).toMatchObject({ status: 503 });
    expect(await auth.authorize('Bearer scraper-token')).toMatchObject({ status: 200 });
    expect(log.lines.map((line) => line.msg)).toContain(
      'could not check a metrics scrape with the API server',
    );
    expect(JSON.stringify(log.lines)).not.toContain('scraper-token');
  });
});

describe('the self-signed metrics certificate', () => {
  it('is a valid ECDSA serving certificate for the given names and addresses, from the clock', () => {
    const clock = new ManualClock();
    const pair = selfSignedCertificate(['localhost', 'kopek.kopek.svc', '127.0.0.1', '::1'], clock);
    const certificate = new X509Certificate(pair.cert);
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(certificate.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(certificate.checkHost('kopek.kopek.svc')).toBe('kopek.kopek.svc');
    expect(certificate.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(certificate.checkIP('::1')).toBe('::1');
    expect(certificate.checkHost('example.com')).toBeUndefined();
    expect(certificate.ca).toBe(false);
    expect(Date.parse(certificate.validFrom)).toBeLessThanOrEqual(clock.now());
    expect(Date.parse(certificate.validTo)).toBeGreaterThan(clock.now() + 364 * 86_400_000);
  });

  it('parses whatever serial number it draws (about one draw in 256 needs DER to drop a leading zero)', () => {
    const clock = new ManualClock();
    // 2,000 draws: the chance that none starts with a zero byte followed by one below 0x80 (the
    // case DER must shorten) is under 0.1%.
    for (let draw = 0; draw < 2000; draw++) {
      const certificate = new X509Certificate(selfSignedCertificate(['localhost'], clock).cert);
      expect(certificate.serialNumber).toMatch(/^[0-9A-F]+$/);
    }
  });

  it('is replaced when the mounted certificate files change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kopek-cert-'));
    try {
      const clock = new ManualClock();
      const write = async (pair: CertificatePair): Promise<void> => {
        await writeFile(join(dir, 'tls.crt'), pair.cert);
        await writeFile(join(dir, 'tls.key'), pair.key);
      };
      const first = selfSignedCertificate(['localhost'], clock);
      await write(first);
      const seen: CertificatePair[] = [];
      const watch = watchCertificateDir({
        dir,
        current: first,
        clock,
        log: memoryLog(),
        onChange: (pair) => seen.push(pair),
        intervalMs: 1000,
      });
      await clock.advance(1000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(seen).toEqual([]);
      const renewed = selfSignedCertificate(['localhost'], clock);
      await write(renewed);
      await clock.advance(1000);
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(1);
      expect(seen[0]?.cert).toBe(renewed.cert);
      watch.cancel();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the metrics server with security', () => {
  it('serves /metrics over HTTPS only to an allowed scraper, and /healthz and /readyz to anyone', async () => {
    const kube = reviewingKube();
    const pair = selfSignedCertificate(['127.0.0.1'], new ManualClock());
    const auth = authorizer(kube);
    const server = await startMetricsServer(
      createMetrics(),
      { ready: () => ({ ok: true, detail: 'caches synced; leading' }) },
      '127.0.0.1',
      0,
      () => undefined,
      { tls: pair, authorize: (header) => auth.authorize(header) },
    );
    const dispatcher = new Agent({ connect: { ca: pair.cert } });
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get = (path: string, token?: string) =>
        fetch(`${url}${path}`, {
          dispatcher,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
      const anonymous = await get('/metrics');
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="kopek"');
      expect((await get('/metrics', 'other-token')).status).toBe(403);
      const allowed = await get('/metrics', 'scraper-token');
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toContain('kopek_monthly_cost_usd');
      expect((await get('/healthz')).status).toBe(200);
      expect(await (await get('/readyz')).text()).toBe('caches synced; leading\n');
      // Plain HTTP on the same port gets nothing.
      await expect(fetch(url.replace('https:', 'http:') + '/metrics')).rejects.toThrow();
    } finally {
      await dispatcher.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
