/**
 * The registry client against real registries: Debian's docker-registry on loopback, one open,
 * one behind token authentication (a real Bearer challenge flow, with anonymous pulls of public
 * repositories), one behind htpasswd basic authentication; seeded through the registry API.
 * A fault proxy in front of the open registry supplies the failures a registry does not make
 * on demand (429, 503, stalls).
 */
import { systemClock } from '../../operator/clock.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RegistryClient,
  type FailedImage,
  type ImageResolution,
  type RegistryClientOptions,
  type RegistryRequestEvent,
} from '../../operator/registry/client.ts';
import {
  credentialsFromSecret,
  type RegistryCredentials,
} from '../../operator/registry/credentials.ts';
import { EcrTokenProvider } from '../../operator/registry/ecr.ts';
import { FaultProxy } from '../registry/fault-proxy.ts';
import { LocalRegistry, writeHtpasswd } from '../registry/registry.ts';
import {
  catalogImages,
  pushImage,
  pushIndex,
  seedCatalog,
  seedFleet,
  type Catalog,
  type SeededImage,
} from '../registry/seed.ts';
import { TokenServer } from '../registry/token-server.ts';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

const USER = 'kopek-puller';
const PASSWORD = 'pw-S3cret-must-not-leak';
const WRONG_PASSWORD = 'wrong-S3cret-must-not-leak';
const REFRESH_TOKEN = 'refresh-S3cret-must-not-leak';
/** Strings that must never show in a message, event or result. */
const SECRETS = [
  PASSWORD,
  WRONG_PASSWORD,
  REFRESH_TOKEN,
  b64(`${USER}:${PASSWORD}`),
  b64(`${USER}:${WRONG_PASSWORD}`),
];

/** A pod's pull secret, through the same parser the operator uses. */
function pullSecret(host: string, entry: Record<string, string>): RegistryCredentials[] {
  const config = { auths: { [host]: entry } };
  return credentialsFromSecret({
    metadata: { name: 'regcred', namespace: 'shop' },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': b64(JSON.stringify(config)) },
  });
}

function expectPlatforms(result: ImageResolution, seeded: SeededImage): void {
  expect(result).toEqual({
    image: seeded.image,
    digest: seeded.digest,
    platforms: seeded.platforms,
  });
}

function expectFailure(result: ImageResolution, kind: FailedImage['error']['kind']): string {
  if (!('error' in result))
    throw new Error(`expected a ${kind} failure, got ${JSON.stringify(result)}`);
  expect(result.error.kind).toBe(kind);
  return result.error.message;
}

describe('registry client against real registries', () => {
  let dir: string;
  let tokens: TokenServer;
  let open: LocalRegistry;
  let secured: LocalRegistry;
  let basic: LocalRegistry;
  let proxy: FaultProxy;
  let openCatalog: Catalog;
  let publicCatalog: Catalog;
  let privateCatalog: Catalog;
  let basicCatalog: Catalog;
  let fleet: SeededImage[];
  /** Stops what beforeAll started, as far as it got. */
  const cleanups: (() => Promise<void>)[] = [];
  /** Everything the clients said, checked for credentials at the end. */
  const said: unknown[] = [];

  function client(options: RegistryClientOptions = {}): RegistryClient {
    return new RegistryClient({
      insecureRegistries: [open.host, secured.host, basic.host, proxy.host],
      // No AWS in tests: an ECR lookup would fail here rather than call out.
      ecr: new EcrTokenProvider({ fetchToken: () => Promise.reject(new Error('no AWS in tests')) }),
      onRequest: (event: RegistryRequestEvent) => said.push(event),
      ...options,
    });
  }

  async function resolve(
    c: RegistryClient,
    image: string,
    creds: RegistryCredentials[] = [],
  ): Promise<ImageResolution> {
    const result = await c.resolve(image, creds);
    said.push(result);
    return result;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-registry-'));
    tokens = await TokenServer.start({
      dir,
      users: { [USER]: PASSWORD },
      refreshTokens: { [REFRESH_TOKEN]: USER },
      publicPrefixes: ['public/'],
    });
    cleanups.push(() => tokens.close());
    const htpasswd = join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, USER, PASSWORD);
    [open, secured, basic] = await Promise.all([
      LocalRegistry.start({ dir, name: 'registry-open' }),
      LocalRegistry.start({
        dir,
        name: 'registry-token',
        auth: {
          kind: 'token',
          realm: tokens.realm,
          service: tokens.service,
          issuer: tokens.issuer,
          rootCertBundle: tokens.certPath,
        },
      }),
      LocalRegistry.start({
        dir,
        name: 'registry-basic',
        auth: { kind: 'htpasswd', path: htpasswd },
      }),
    ]);
    cleanups.push(
      () => open.stop(),
      () => secured.stop(),
      () => basic.stop(),
    );
    const pushToken = (repository: string): string =>
      `Bearer ${tokens.mint([{ type: 'repository', name: repository, actions: ['pull', 'push'] }], 'seeder')}`;
    [openCatalog, publicCatalog, privateCatalog, basicCatalog, fleet] = await Promise.all([
      seedCatalog({ url: open.url }, open.host, 'kopek'),
      seedCatalog({ url: secured.url, authorize: pushToken }, secured.host, 'public'),
      seedCatalog({ url: secured.url, authorize: pushToken }, secured.host, 'private'),
      seedCatalog(
        { url: basic.url, authorize: () => `Basic ${b64(`${USER}:${PASSWORD}`)}` },
        basic.host,
        'private',
      ),
      seedFleet({ url: open.url }, open.host, 'fleet', 20),
    ]);
    proxy = await FaultProxy.start(open.host);
    cleanups.push(() => proxy.close());
  });

  afterAll(async () => {
    await Promise.all(cleanups.map((cleanup) => cleanup()));
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves OCI indexes, Docker manifest lists, single manifests of both architectures, and attested indexes', async () => {
    const c = client();
    for (const seeded of catalogImages(openCatalog))
      expectPlatforms(await resolve(c, seeded.image), seeded);
    // Attestation entries (unknown/unknown) are not platforms.
    expect(openCatalog.attested.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
  });

  it('resolves digest references, with and without a tag', async () => {
    const c = client();
    const { multiArch, arm64Only } = openCatalog;
    const byDigest = `${open.host}/kopek/multi-arch@${multiArch.digest}`;
    expect(await resolve(c, byDigest)).toEqual({
      image: byDigest,
      digest: multiArch.digest,
      platforms: multiArch.platforms,
    });
    const tagged = `${arm64Only.image}@${arm64Only.digest}`;
    expect(await resolve(c, tagged)).toEqual({
      image: tagged,
      digest: arm64Only.digest,
      platforms: arm64Only.platforms,
    });
    const wrong = `${open.host}/kopek/multi-arch@sha256:${'0'.repeat(64)}`;
    expect(expectFailure(await resolve(c, wrong), 'not-found')).toContain(open.host);
  });

  it('reads public images through the anonymous bearer-token flow, one token per repository', async () => {
    const c = client();
    tokens.requests.length = 0;
    const images = catalogImages(publicCatalog);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => images.map((seeded) => resolve(c, seeded.image))).flat(),
    );
    results.forEach((result, i) => {
      const seeded = images[i % images.length];
      if (seeded !== undefined) expectPlatforms(result, seeded);
    });
    expect(tokens.requests).toHaveLength(images.length);
    for (const request of tokens.requests) {
      expect(request.user).toBeUndefined();
      expect(request.scopes[0]).toMatch(/^repository:public\/[a-z0-9-]+:pull$/);
    }
  });

  it('resolves a protected image with its pull secret, and is Unknown (auth) without it or with wrong credentials', async () => {
    const { multiArch, amd64Only } = privateCatalog;
    const withSecret = await resolve(
      client(),
      multiArch.image,
      pullSecret(secured.host, { auth: b64(`${USER}:${PASSWORD}`) }),
    );
    expectPlatforms(withSecret, multiArch);
    expect(
      tokens.requests.some(
        (r) => r.user === USER && r.scopes.includes('repository:private/multi-arch:pull'),
      ),
    ).toBe(true);

    const without = expectFailure(await resolve(client(), multiArch.image), 'auth');
    expect(without).toContain(multiArch.image);
    expect(without).toContain(`registry ${secured.host}`);
    expect(without).toContain('without credentials');

    const wrong = expectFailure(
      await resolve(
        client(),
        amd64Only.image,
        pullSecret(secured.host, { username: USER, password: WRONG_PASSWORD }),
      ),
      'auth',
    );
    expect(wrong).toContain('secret shop/regcred');
    expect(wrong).toContain(amd64Only.image);
  });

  it('exchanges an identity token (OAuth2 refresh token) for a pull token', async () => {
    const { dockerList } = privateCatalog;
    expectPlatforms(
      await resolve(
        client(),
        dockerList.image,
        pullSecret(secured.host, { identitytoken: REFRESH_TOKEN }),
      ),
      dockerList,
    );
    const rejected = await resolve(
      client(),
      dockerList.image,
      pullSecret(secured.host, { identitytoken: 'not-a-known-token' }),
    );
    expect(expectFailure(rejected, 'auth')).toContain('token service');
  });

  it('authenticates with basic credentials to an htpasswd registry', async () => {
    const { attested, arm64Only } = basicCatalog;
    const secret = pullSecret(`https://${basic.host}/v2/`, { auth: b64(`${USER}:${PASSWORD}`) });
    expectPlatforms(await resolve(client(), attested.image, secret), attested);
    expectPlatforms(await resolve(client(), arm64Only.image, secret), arm64Only);
    expect(expectFailure(await resolve(client(), attested.image), 'auth')).toContain(
      'without credentials',
    );
    const wrong = pullSecret(basic.host, { auth: b64(`${USER}:${WRONG_PASSWORD}`) });
    expect(expectFailure(await resolve(client(), attested.image, wrong), 'auth')).toContain(
      'secret shop/regcred',
    );
  });

  it('does not serve one pod’s authorised result to a pod without the secret', async () => {
    const c = client();
    const { multiArch } = privateCatalog;
    const secret = pullSecret(secured.host, { auth: b64(`${USER}:${PASSWORD}`) });
    expectPlatforms(await resolve(c, multiArch.image, secret), multiArch);
    expectFailure(await resolve(c, multiArch.image), 'auth');
  });

  it('reports missing tags and repositories as not-found, bad references as invalid-reference', async () => {
    const c = client();
    const missingTag = expectFailure(
      await resolve(c, `${open.host}/kopek/multi-arch:9.9`),
      'not-found',
    );
    expect(missingTag).toBe(
      `not found: ${open.host}/kopek/multi-arch:9.9 does not exist in registry ${open.host} (HTTP 404 MANIFEST_UNKNOWN)`,
    );
    expect(expectFailure(await resolve(c, `${open.host}/kopek/nope:1`), 'not-found')).toContain(
      `${open.host}/kopek/nope:1 does not exist`,
    );
    expect(
      expectFailure(await resolve(c, `${open.host}/Kopek/UPPER:1`), 'invalid-reference'),
    ).toContain('lower case');
  });

  it('makes at most one manifest fetch per image for 1,000 pods sharing 20 images', async () => {
    const c = client();
    const fetchesBefore = (await open.manifestGets()).length;
    // Each pod: an init container's image and an app container's, all looked up at once.
    const pods = Array.from({ length: 1000 }, (_, i) => [fleet[(i * 7) % 20], fleet[i % 20]]);
    const lookUp = (pod: (typeof pods)[number]) =>
      Promise.all(pod.map((seeded) => c.resolve(seeded?.image ?? '')));
    const results = await Promise.all(pods.map(lookUp));
    results.forEach((entries, i) => {
      expect(entries).toEqual(
        pods[i]?.map((seeded) => ({
          image: seeded?.image,
          digest: seeded?.digest,
          platforms: seeded?.platforms,
        })),
      );
    });
    const fetches = (await open.manifestGets()).slice(fetchesBefore);
    expect(fetches).toHaveLength(20);
    expect(new Set(fetches).size).toBe(20);
    // A second pass within the cache TTL asks the registry nothing.
    await Promise.all(pods.map(lookUp));
    expect((await open.manifestGets()).length - fetchesBefore).toBe(20);
  });

  it('confirms an unchanged tag with a HEAD after the TTL, and re-reads a tag that moved', async () => {
    let now = Date.now();
    const c = client({ clock: { ...systemClock, now: () => now }, cacheTtlMs: 60_000 });
    const target = { url: open.url };
    const amd64 = await pushImage(
      target,
      'kopek/moving',
      '1',
      { os: 'linux', architecture: 'amd64' },
      'oci',
    );
    const image = `${open.host}/kopek/moving:1`;
    const requests = async (): Promise<string[]> =>
      (await open.accessLog())
        .filter((e) => e.uri === '/v2/kopek/moving/manifests/1')
        .map((e) => `${e.method} ${e.status}`);

    expect(await resolve(c, image)).toEqual({
      image,
      digest: amd64.digest,
      platforms: ['linux/amd64'],
    });
    now += 61_000;
    expect(await resolve(c, image)).toEqual({
      image,
      digest: amd64.digest,
      platforms: ['linux/amd64'],
    });
    expect(await requests()).toEqual(['PUT 201', 'GET 200', 'HEAD 200']);

    const multi = await pushIndex(
      target,
      'kopek/moving',
      '1',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
      'oci',
    );
    now += 61_000;
    expect(await resolve(c, image)).toEqual({
      image,
      digest: multi.digest,
      platforms: ['linux/amd64', 'linux/arm64'],
    });
    expect(await requests()).toEqual([
      'PUT 201',
      'GET 200',
      'HEAD 200',
      'PUT 201',
      'HEAD 200',
      'GET 200',
    ]);
  });

  it('honours Retry-After on a 429 and then succeeds', async () => {
    let limited = 0;
    proxy.reset(({ path }) =>
      path.includes('/manifests/') && limited++ === 0
        ? {
            action: 'respond',
            status: 429,
            headers: { 'Retry-After': '1' },
            body: '{"errors":[{"code":"TOOMANYREQUESTS"}]}',
          }
        : { action: 'pass' },
    );
    const seeded = openCatalog.amd64Only;
    const image = `${proxy.host}/kopek/amd64-only:1.0`;
    expect(await resolve(client({ backoffBaseMs: 10 }), image)).toEqual({
      image,
      digest: seeded.digest,
      platforms: seeded.platforms,
    });
    const manifestRequests = proxy.requests.filter((r) => r.path.includes('/manifests/'));
    expect(manifestRequests.map((r) => r.status)).toEqual([429, 200]);
    const [first, second] = manifestRequests;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
  });

  it('retries 5xx with backoff, then gives registry-error', async () => {
    proxy.reset(({ path }) =>
      path.includes('/manifests/')
        ? { action: 'respond', status: 503, body: 'down for maintenance' }
        : { action: 'pass' },
    );
    const image = `${proxy.host}/kopek/multi-arch:1.0`;
    const message = expectFailure(
      await resolve(client({ maxRetries: 2, backoffBaseMs: 20 }), image),
      'registry-error',
    );
    expect(message).toContain('HTTP 503');
    expect(message).toContain('after 3 attempts');
    expect(proxy.requests.filter((r) => r.path.includes('/manifests/'))).toHaveLength(3);
  });

  it('gives timeout when the registry does not answer in time', async () => {
    proxy.reset(({ path }) =>
      path.includes('/manifests/') ? { action: 'hang' } : { action: 'pass' },
    );
    const started = Date.now();
    const message = expectFailure(
      await resolve(client({ timeoutMs: 300 }), `${proxy.host}/kopek/multi-arch:1.0`),
      'timeout',
    );
    // It gave up on its own 0.3 s timeout, not the 10 s default (retries included).
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(message).toContain(`registry ${proxy.host} did not answer within 0.3 s`);
  });

  it('keeps requests per registry within the concurrency limit', async () => {
    proxy.reset(() => ({ action: 'pass', delayMs: 30 }));
    const c = client({ maxConcurrentPerRegistry: 3 });
    const images = fleet.map((seeded) => seeded.image.replace(open.host, proxy.host));
    const results = await Promise.all(images.map((image) => resolve(c, image)));
    results.forEach((result, i) => {
      expect(result).toMatchObject({ platforms: fleet[i]?.platforms });
    });
    expect(proxy.maxInFlight).toBe(3);
  });

  it('gives unreachable while the registry is stopped and recovers when it returns', async () => {
    let now = Date.now();
    const c = client({
      clock: { ...systemClock, now: () => now },
      cacheTtlMs: 60_000,
      failureTtlMs: 5_000,
    });
    const seeded = openCatalog.dockerList;
    expectPlatforms(await resolve(c, seeded.image), seeded);

    await open.stop();
    now += 61_000;
    const down = await Promise.all(Array.from({ length: 50 }, () => c.resolve(seeded.image)));
    for (const result of down) {
      expect(expectFailure(result, 'unreachable')).toMatch(
        new RegExp(`^unreachable: could not connect to registry ${open.host} \\(ECONNREFUSED\\)`),
      );
    }

    await open.restart();
    // Within the failure TTL the verdict stays Unknown; after it, the registry is asked again.
    expectFailure(await resolve(c, seeded.image), 'unreachable');
    now += 5_001;
    expectPlatforms(await resolve(c, seeded.image), seeded);
  });

  it('never puts credentials in results, messages or request events', () => {
    const text = JSON.stringify(said);
    expect(said.length).toBeGreaterThan(100);
    expect(text).toContain('authentication failed');
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/Bearer |Basic /);
  });
});
