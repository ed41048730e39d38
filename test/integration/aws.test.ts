import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LivePrices } from '../../operator/aws/live-prices.ts';
import { createLogger } from '../../operator/log.ts';
import { createMetrics } from '../../operator/metrics.ts';
import { recommend } from '../../recommender/recommend.ts';
import { SNAPSHOT_PRICES, onDemandPrice } from '../../recommender/pricing.ts';
import { goodFacts, node, pod } from '../../recommender/testing.ts';
import { FakeAws } from '../aws/fake-aws.ts';
import { LocalMoto } from '../aws/moto.ts';
import { KOPEK_CLI } from '../support/kopek.ts';

const WEB_IDENTITY_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.irsa-token-must-not-leak.sig';
const POD_IDENTITY_TOKEN = 'pod-identity-token-must-not-leak';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/kopek';
const NODES = [
  ...['a', 'b', 'c'].map((z) => ({
    'topology.kubernetes.io/region': 'us-east-1',
    'topology.kubernetes.io/zone': `us-east-1${z}`,
    'node.kubernetes.io/instance-type': 'm6i.xlarge',
    'kubernetes.io/arch': 'amd64',
  })),
  {
    'topology.kubernetes.io/region': 'us-east-1',
    'topology.kubernetes.io/zone': 'us-east-1a',
    'node.kubernetes.io/instance-type': 'm7g.xlarge',
    'kubernetes.io/arch': 'arm64',
  },
];

/** An environment with no AWS credentials anywhere in the default chain (no IMDS either). */
function bareEnv(): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    AWS_CONFIG_FILE: '/nonexistent/config',
  };
}

function run(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [KOPEK_CLI, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close': at 'exit' the last of stdout and stderr may still be unread.
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

describe('live AWS prices through the AWS SDK, against moto and a wire-level fake', () => {
  let dir: string;
  let moto: LocalMoto;
  let fake: FakeAws;
  let endpoints: NodeJS.ProcessEnv;
  const CHECK = [
    'run',
    '--check-aws',
    '--region',
    'us-east-1',
    '--kubeconfig',
    '/nonexistent/kubeconfig',
  ];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-aws-'));
    moto = await LocalMoto.start(dir);
    fake = new FakeAws({ motoUrl: moto.url });
    await fake.start();
    await writeFile(join(dir, 'web-identity-token'), WEB_IDENTITY_TOKEN);
    await writeFile(join(dir, 'pod-identity-token'), POD_IDENTITY_TOKEN);
    endpoints = {
      AWS_ENDPOINT_URL_PRICING: fake.url,
      AWS_ENDPOINT_URL_EC2: fake.url,
      AWS_ENDPOINT_URL_STS: fake.url,
    };
  });

  afterAll(async () => {
    await fake.stop();
    await moto.component.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('IRSA: kopek run --check-aws assumes the role with the web identity token and every call is OK', async () => {
    const result = await run(CHECK, {
      ...bareEnv(),
      ...endpoints,
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'),
      AWS_ROLE_ARN: ROLE_ARN,
    });
    expect(result.stdout).toMatch(
      /^pricing:GetProducts\s+OK\s+1367 on-demand prices in us-east-1$/m,
    );
    expect(result.stdout).toMatch(/^ec2:DescribeSpotPriceHistory\s+OK\s/m);
    expect(result.stdout).toMatch(/^ec2:DescribeInstanceTypes\s+OK\s/m);
    expect(result.stdout).toMatch(/^ec2:GetSpotPlacementScores\s+OK\s+amd64 .*: 7$/m);
    expect(result.code).toBe(0);
    // The SDK called AssumeRoleWithWebIdentity (moto's STS) with the projected token ...
    expect(fake.webIdentityTokens).toEqual([WEB_IDENTITY_TOKEN]);
    // ... and signed every call with the temporary credentials it got back.
    const signed = fake.calls.filter((c) => c.action !== 'AssumeRoleWithWebIdentity');
    expect(signed.length).toBeGreaterThan(0);
    for (const call of signed) {
      expect(call.accessKeyId).toMatch(/^ASIA/);
      expect(call.sessionToken).toBe(true);
    }
    const output = result.stdout + result.stderr;
    for (const secret of [WEB_IDENTITY_TOKEN, ...fake.secrets])
      expect(output).not.toContain(secret);
  });

  it('pages through GetProducts and rides out the throttling of every third call', () => {
    const products = fake.callsOf('GetProducts');
    // 1,367 prices are 14 pages; every third call was answered 429 and retried by the SDK.
    expect(products.filter((c) => c.status === 200)).toHaveLength(14);
    expect(products.filter((c) => c.status === 429).length).toBeGreaterThanOrEqual(6);
    expect(
      fake.callsOf('GetSpotPlacementScores').every((c) => c.status === 200 || c.status === 503),
    ).toBe(true);
  });

  it('EKS Pod Identity: reads credentials from the container endpoint with the token file', async () => {
    fake.calls.length = 0;
    fake.podIdentity = {
      token: POD_IDENTITY_TOKEN,
      accessKeyId: 'ASIAPODIDENTITYTEST1',
      secretAccessKey: 'pod-identity-secret-must-not-leak',
      sessionToken: 'pod-identity-session-must-not-leak',
    };
    const env = {
      ...bareEnv(),
      ...endpoints,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: fake.podIdentityUrl,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'pod-identity-token'),
    };
    const result = await run(CHECK, env);
    expect(result.stdout.match(/ OK /g)).toHaveLength(4);
    expect(result.code).toBe(0);
    const signed = fake.calls.filter((c) => c.accessKeyId !== undefined);
    expect(signed.length).toBeGreaterThan(0);
    expect(new Set(signed.map((c) => c.accessKeyId))).toEqual(new Set(['ASIAPODIDENTITYTEST1']));

    // A token the endpoint does not accept: no credentials, said per call, nothing leaks.
    await writeFile(join(dir, 'wrong-token'), 'wrong-token');
    const refused = await run(CHECK, {
      ...env,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'wrong-token'),
    });
    expect(refused.stdout).toMatch(
      /^pricing:GetProducts\s+ERROR\s+NoCredentials: no AWS credentials/m,
    );
    expect(refused.code).toBe(2);
    for (const text of [result.stdout, result.stderr, refused.stdout, refused.stderr]) {
      for (const secret of [
        POD_IDENTITY_TOKEN,
        'pod-identity-secret-must-not-leak',
        'pod-identity-session-must-not-leak',
      ])
        expect(text).not.toContain(secret);
    }
  });

  it('without credentials: a clear message for each call', async () => {
    const result = await run(CHECK, { ...bareEnv(), ...endpoints });
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines)
      expect(line).toMatch(
        /ERROR\s+NoCredentials: no AWS credentials \(IRSA web identity, EKS Pod Identity/,
      );
    expect(result.code).toBe(2);
  });

  describe('the operator price source', () => {
    const logs: string[] = [];
    const metrics = createMetrics();
    let changes = 0;
    let prices: LivePrices;

    beforeAll(() => {
      Object.assign(process.env, bareEnv(), endpoints, {
        AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'),
        AWS_ROLE_ARN: ROLE_ARN,
      });
      prices = new LivePrices({
        base: SNAPSHOT_PRICES,
        nodeLabels: () => NODES,
        refreshIntervalMs: 3_600_000,
        log: createLogger('info', (line) => logs.push(line)),
        metrics,
        onChange: () => {
          changes++;
        },
      });
    });

    afterAll(async () => {
      await prices.stop();
    });

    const errors = async (call: string, reason: string): Promise<number> => {
      const metric = await metrics.awsErrors.get();
      return (
        metric.values.find((v) => v.labels.call === call && v.labels.reason === reason)?.value ?? 0
      );
    };

    it('turns the answers into a Live book, and tells the controller once', async () => {
      const outcomes = await prices.refresh();
      expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true]);
      expect(prices.book().source).toBe('Live');
      expect(changes).toBe(1);
      // moto's Spot history has every type in each zone; the cluster's zones are a, b and c.
      expect(prices.book().spot.get('us-east-1')?.get('m6i.xlarge')?.hourly).toBe(0.00001);
      // Sizes of types newer than the snapshot come from DescribeInstanceTypes (moto's data).
      expect(SNAPSHOT_PRICES.specs.get('m8i.xlarge')).toBeUndefined();
      expect(prices.book().specs.get('m8i.xlarge')).toEqual({ vcpu: 4, memoryGiB: 16 });
      await prices.refresh();
      expect(changes).toBe(1);
      expect(prices.age(Date.now()).source).toBe('live');
    });

    it('feeds placement scores into the Spot verdict', async () => {
      fake.scoreFor = (types) => (types.some((t) => t.startsWith('m7g')) ? 2 : 8);
      await prices.refresh();
      expect(changes).toBe(2);
      const arm = node('arm', 'us-east-1a', 'm7g.xlarge', { arch: 'arm64' });
      const facts = goodFacts({ pods: [pod('p1', arm), pod('p2', { ...arm, name: 'arm-2' })] });
      expect(prices.spotPlacementScore(facts)).toBe(2);
      const reasons = recommend({ ...facts, spotPlacementScore: 2 }, prices.book()).spot?.reasons;
      expect(reasons?.map((r) => r.code)).toContain('LowPlacementScore');
      fake.scoreFor = () => 7;
      await prices.refresh();
    });

    it('names a missing IAM action once, in a log line and a condition, and keeps the last good data', async () => {
      const before = prices.book();
      fake.denied.add('GetProducts');
      await prices.refresh();
      await prices.refresh();
      expect(prices.book()).toBe(before);
      expect(prices.condition()).toMatchObject({
        type: 'LivePrices',
        status: 'False',
        reason: 'AccessDenied',
        message: expect.stringContaining('pricing:GetProducts') as unknown,
      });
      expect(logs.filter((line) => line.includes('denied pricing:GetProducts'))).toHaveLength(1);
      expect(await errors('GetProducts', 'AccessDenied')).toBe(2);
      fake.denied.delete('GetProducts');
      await prices.refresh();
      expect(prices.condition()).toBeUndefined();
    });

    it('moves the money when a list price moves', async () => {
      const m6i = onDemandPrice(prices.book(), 'us-east-1', 'm6i.xlarge')?.hourly ?? 0;
      fake.prices.set('m6i.xlarge', { usd: 0.25, effectiveDate: '2026-12-01T00:00:00Z' });
      await prices.refresh();
      expect(m6i).toBe(0.192);
      expect(onDemandPrice(prices.book(), 'us-east-1', 'm6i.xlarge')?.hourly).toBe(0.25);
      const facts = goodFacts();
      expect(recommend(facts, prices.book()).pricing?.asOf).toBe('2026-12-01T00:00:00Z');
    });

    it('keeps the last good data while the endpoints are down, and recovers', async () => {
      const before = prices.book();
      const port = Number(new URL(fake.url).port);
      await fake.stop();
      const outcomes = await prices.refresh();
      expect(outcomes.map((o) => (o.ok === false ? o.failure : o.ok))).toEqual([
        'Unavailable',
        'Unavailable',
        'Unavailable',
        'Unavailable',
      ]);
      expect(prices.book()).toBe(before);
      expect(await errors('DescribeSpotPriceHistory', 'Unavailable')).toBe(1);
      await fake.start(port);
      expect((await prices.refresh()).every((o) => o.ok === true)).toBe(true);
      const text = logs.join('\n');
      for (const secret of [WEB_IDENTITY_TOKEN, ...fake.secrets])
        expect(text).not.toContain(secret);
    }, 120_000);
  });
});
