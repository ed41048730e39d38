/**
 * An OCI distribution client that answers one question: which platforms does an image offer?
 *
 * It resolves a reference to its manifest (sending Accept for the four manifest types), reads
 * the platforms of an index / manifest list, or the config blob of a single manifest. It
 * authenticates the way `docker pull` does — a `/v2/` ping learns the challenge once per
 * registry, then basic credentials or a bearer token from the challenge's realm (anonymous,
 * with pull-secret credentials, or with an Amazon ECR token) — and it is built for a cluster's
 * worth of pods: concurrent lookups of one image share one request, results are cached (briefly
 * for failures, so recovery shows soon), requests per registry are limited, and 429/5xx are
 * retried with backoff honouring Retry-After. Every failure comes back as an error of a known
 * kind with a message that names the image and the registry and never holds a credential.
 * Authentication is auth.ts's, the transport (limits, timeouts, retries) http.ts's.
 */
import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { RegistryAuth, type Target } from './auth.ts';
import { selectCredentials, type RegistryCredentials } from './credentials.ts';
import { EcrTokenError, EcrTokenProvider, ecrRegistry } from './ecr.ts';
import {
  LookupError,
  RegistryHttp,
  errorCodes,
  expectOk,
  requestHeaders,
  setBounded,
  shared,
  type Expiring,
  type HttpResult,
  type RegistryErrorKind,
  type RegistryRequestEvent,
} from './http.ts';
import { MANIFEST_ACCEPT, ManifestError, parseManifest, platformFromConfig } from './manifest.ts';
import {
  formatImageReference,
  manifestReference,
  parseImageReference,
  registryApiHost,
  type ImageReference,
} from './reference.ts';

export type { RegistryErrorKind, RegistryRequestEvent } from './http.ts';

/** The platforms of an image (sorted "os/arch[/variant]"), and the digest they were read from. */
export interface ResolvedImage {
  image: string;
  digest: string;
  platforms: string[];
}

/** Why the platforms of an image could not be read. */
export interface FailedImage {
  image: string;
  error: { kind: RegistryErrorKind; message: string };
}

export type ImageResolution = ResolvedImage | FailedImage;

export interface RegistryClientOptions {
  /** Per HTTP request, body included. Default 10 s. */
  timeoutMs?: number;
  /** Requests in flight per host. Default 8. */
  maxConcurrentPerRegistry?: number;
  /** How long a resolved image is trusted before asking again (tags move). Default 1 h. */
  cacheTtlMs?: number;
  /** How long a failure is remembered, so a recovered registry is seen soon. Default 60 s. */
  failureTtlMs?: number;
  /** Retries after a 429 or 5xx. Default 3. */
  maxRetries?: number;
  /** First backoff between retries (doubling, with jitter, at most 10 s). Default 500 ms. */
  backoffBaseMs?: number;
  /** A Retry-After longer than this is not waited for: the lookup fails. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Entries kept in each cache (oldest dropped first). Default 10,000. */
  maxCacheEntries?: number;
  /** Reads the time for cache expiry and waits between retries. */
  clock?: Clock;
  /** Credentials for Amazon ECR images that no pull secret covers; the default uses the AWS SDK. */
  ecr?: EcrTokenProvider;
  /** host:port registries served over plain HTTP (loopback tests); all others use HTTPS. */
  insecureRegistries?: readonly string[];
  onRequest?: (event: RegistryRequestEvent) => void;
}

const PREFIX: Record<RegistryErrorKind, string> = {
  auth: 'authentication failed',
  'not-found': 'not found',
  timeout: 'timed out',
  unreachable: 'unreachable',
  'invalid-reference': 'invalid image reference',
  'registry-error': 'registry error',
};

type Outcome = { digest: string; platforms: string[] } | { error: FailedImage['error'] };

/** Whose credentials a lookup uses; part of every cache key, so one pod's secret never serves another. */
interface AuthSource {
  credentials?: RegistryCredentials;
  ecr: boolean;
  fingerprint: string;
}

function digestOf(body: Uint8Array, algorithm: string): string | undefined {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

function fingerprintOf(credentials: RegistryCredentials): string {
  const { registry, username, password, identityToken, registryToken } = credentials;
  const material = JSON.stringify([registry, username, password, identityToken, registryToken]);
  return `secret:${createHash('sha256').update(material).digest('hex').slice(0, 24)}`;
}

/** Resolves images to their platforms; one instance per process, shared by all reconciles. */
export class RegistryClient {
  private readonly cacheTtlMs: number;
  private readonly failureTtlMs: number;
  private readonly maxEntries: number;
  private readonly clock: Clock;
  private readonly ecr: EcrTokenProvider;
  private readonly insecure: ReadonlySet<string>;
  private readonly http: RegistryHttp;
  private readonly auth: RegistryAuth;

  /** Outcomes by credentials + canonical reference. */
  private readonly results = new Map<string, Expiring<Outcome>>();
  private readonly lookups = new Map<string, Promise<Outcome>>();
  /** Platforms by credentials + repository@digest: content-addressed, so never stale. */
  private readonly byDigest = new Map<string, string[]>();

  constructor(options: RegistryClientOptions = {}) {
    this.cacheTtlMs = options.cacheTtlMs ?? 3_600_000;
    this.failureTtlMs = options.failureTtlMs ?? 60_000;
    this.maxEntries = options.maxCacheEntries ?? 10_000;
    this.clock = options.clock ?? systemClock;
    this.ecr = options.ecr ?? new EcrTokenProvider({ clock: this.clock });
    this.insecure = new Set(options.insecureRegistries ?? []);
    this.http = new RegistryHttp({
      timeoutMs: options.timeoutMs ?? 10_000,
      maxConcurrentPerRegistry: options.maxConcurrentPerRegistry ?? 8,
      maxRetries: options.maxRetries ?? 3,
      backoffBaseMs: options.backoffBaseMs ?? 500,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      clock: this.clock,
      onRequest: options.onRequest,
    });
    this.auth = new RegistryAuth({
      http: this.http,
      clock: this.clock,
      challengeTtlMs: this.cacheTtlMs,
      maxEntries: this.maxEntries,
      insecure: this.insecure,
    });
  }

  /**
   * The platforms of `image` (as written in a pod spec), or why they could not be read.
   * Never throws.
   * @param credentials the pod's pull-secret credentials; the best match for the image's
   *   registry is used, else an ECR token for ECR hosts, else none (anonymous).
   */
  async resolve(
    image: string,
    credentials: readonly RegistryCredentials[] = [],
  ): Promise<ImageResolution> {
    let ref: ImageReference;
    try {
      ref = parseImageReference(image);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { image, error: { kind: 'invalid-reference', message } };
    }
    const source = this.authSource(ref, credentials);
    const key = `${source.fingerprint} ${formatImageReference(ref)}`;
    const cached = this.results.get(key);
    // After the TTL, a tag whose digest has not moved is confirmed with a HEAD, not re-fetched.
    const previous =
      cached === undefined || 'error' in cached.value ? undefined : cached.value.digest;
    const outcome =
      cached !== undefined && this.clock.now() < cached.expiresAt
        ? cached.value
        : await shared(this.lookups, key, async () => {
            const fresh = await this.lookup(ref, source, previous);
            const ttl = 'error' in fresh ? this.failureTtlMs : this.cacheTtlMs;
            setBounded(
              this.results,
              key,
              { value: fresh, expiresAt: this.clock.now() + ttl },
              this.maxEntries,
            );
            return fresh;
          });
    return 'error' in outcome
      ? { image, error: { ...outcome.error } }
      : { image, digest: outcome.digest, platforms: [...outcome.platforms] };
  }

  private authSource(ref: ImageReference, credentials: readonly RegistryCredentials[]): AuthSource {
    const matched = selectCredentials(credentials, ref);
    if (matched !== undefined)
      return { credentials: matched, ecr: false, fingerprint: fingerprintOf(matched) };
    if (ecrRegistry(ref.registry) !== undefined) return { ecr: true, fingerprint: 'ecr' };
    return { ecr: false, fingerprint: 'anonymous' };
  }

  private async lookup(
    ref: ImageReference,
    source: AuthSource,
    previous: string | undefined,
  ): Promise<Outcome> {
    const canonical = formatImageReference(ref);
    let secrets: string[] = [];
    try {
      const target = await this.target(ref, canonical, source);
      const c = target.credentials;
      secrets = [c?.password, c?.identityToken, c?.registryToken].filter(
        (s): s is string => s !== undefined && s.length >= 4,
      );
      return await this.platforms(target, previous);
    } catch (error) {
      const kind = error instanceof LookupError ? error.kind : 'registry-error';
      const detail =
        error instanceof LookupError || error instanceof ManifestError
          ? error.message
          : `unexpected failure reading ${canonical}: ${error instanceof Error ? error.message : String(error)}`;
      // Messages are built from names and status codes only; this is the last line of defence.
      const message = secrets.reduce(
        (text, secret) => text.split(secret).join('[redacted]'),
        `${PREFIX[kind]}: ${detail}`,
      );
      return { error: { kind, message } };
    }
  }

  private async target(
    ref: ImageReference,
    canonical: string,
    source: AuthSource,
  ): Promise<Target> {
    const host = registryApiHost(ref.registry);
    const scheme = this.insecure.has(host) ? 'http' : 'https';
    let credentials = source.credentials;
    let presenting =
      credentials === undefined
        ? `without credentials (no imagePullSecret has an entry for ${ref.registry})`
        : `with the credentials from ${credentials.source ?? 'a pull secret'}`;
    if (source.ecr) {
      try {
        credentials = await this.ecr.credentialsFor(ref.registry);
      } catch (error) {
        if (error instanceof EcrTokenError)
          throw new LookupError('auth', `${error.message} (for ${canonical})`);
        throw error;
      }
      presenting = `with ${credentials?.source ?? 'an Amazon ECR token'}`;
    }
    const target: Target = {
      ref,
      canonical,
      host,
      baseUrl: `${scheme}://${host}`,
      fingerprint: source.fingerprint,
      presenting,
    };
    if (credentials !== undefined) target.credentials = credentials;
    return target;
  }

  /**
   * Manifest → platforms: from the index, or from the config blob of a single manifest.
   * `previous` is the digest the tag had last time: when a HEAD shows it unchanged, the known
   * platforms stand (HEADs are cheap, and Docker Hub does not count them against pull limits).
   */
  private async platforms(target: Target, previous: string | undefined): Promise<Outcome> {
    const { ref } = target;
    const repository = `${target.fingerprint} ${ref.registry}/${ref.repository}`;
    const pinned =
      ref.digest === undefined ? undefined : this.byDigest.get(`${repository}@${ref.digest}`);
    if (ref.digest !== undefined && pinned !== undefined)
      return { digest: ref.digest, platforms: pinned };

    const reference = manifestReference(ref);
    const path = `/v2/${ref.repository}/manifests/${reference}`;
    const unchanged =
      ref.digest === undefined && previous !== undefined
        ? this.byDigest.get(`${repository}@${previous}`)
        : undefined;
    if (previous !== undefined && unchanged !== undefined) {
      const head = await this.get(target, path, MANIFEST_ACCEPT, `HEAD ${path}`, 'HEAD');
      if (head.status === 200 && head.headers.get('docker-content-digest') === previous)
        return { digest: previous, platforms: unchanged };
    }
    const what = `GET ${path}`;
    const response = await this.get(target, path, MANIFEST_ACCEPT, what);
    if (response.status === 404)
      throw new LookupError(
        'not-found',
        `${target.canonical} does not exist in registry ${ref.registry} (HTTP 404${errorCodes(response.body)})`,
      );
    expectOk(target.ref.registry, target.canonical, response, what);
    const algorithm = ref.digest?.split(':')[0] ?? 'sha256';
    const digest = digestOf(response.body, algorithm) ?? ref.digest ?? '';
    if (ref.digest !== undefined && digest !== ref.digest)
      throw new LookupError(
        'registry-error',
        `registry ${ref.registry} sent content for ${target.canonical} that does not match its digest`,
      );

    const known = this.byDigest.get(`${repository}@${digest}`);
    if (known !== undefined) return { digest, platforms: known };
    const manifest = parseManifest(response.body, response.headers.get('content-type'));
    let platforms: string[];
    if (manifest.kind === 'index') platforms = manifest.platforms;
    else {
      const blobWhat = `GET /v2/${ref.repository}/blobs/${manifest.config.digest}`;
      const blob = await this.get(
        target,
        `/v2/${ref.repository}/blobs/${manifest.config.digest}`,
        '*/*',
        blobWhat,
      );
      expectOk(target.ref.registry, target.canonical, blob, blobWhat);
      const blobAlgorithm = manifest.config.digest.split(':')[0] ?? '';
      const blobDigest = digestOf(blob.body, blobAlgorithm);
      if (blobDigest !== undefined && blobDigest !== manifest.config.digest)
        throw new LookupError(
          'registry-error',
          `registry ${ref.registry} sent a config blob for ${target.canonical} that does not match its digest`,
        );
      platforms = [platformFromConfig(blob.body)];
    }
    setBounded(this.byDigest, `${repository}@${digest}`, platforms, this.maxEntries);
    return { digest, platforms };
  }

  /** An authenticated GET (or HEAD) against the registry; a 401 re-learns the challenge once. */
  private async get(
    target: Target,
    path: string,
    accept: string,
    what: string,
    method: 'GET' | 'HEAD' = 'GET',
  ): Promise<HttpResult> {
    const url = `${target.baseUrl}${path}`;
    const challenge = await this.auth.challenge(target);
    const authorization = await this.auth.authorization(target, challenge, false);
    let response = await this.http.send(
      target.host,
      url,
      { method, headers: requestHeaders(accept, authorization) },
      target.ref.registry,
      what,
    );
    if (response.status === 401) {
      const fresh = this.auth.relearn(target, response);
      if (fresh !== undefined) {
        const retry = await this.auth.authorization(target, fresh, true);
        if (retry !== undefined && retry !== authorization)
          response = await this.http.send(
            target.host,
            url,
            { method, headers: requestHeaders(accept, retry) },
            target.ref.registry,
            what,
          );
      }
    }
    if (response.status === 401 || response.status === 403) {
      // Docker Hub and others deny anonymous clients rather than admit a private repository exists.
      const hint = target.credentials === undefined ? '; the repository may also not exist' : '';
      throw new LookupError(
        'auth',
        `registry ${target.ref.registry} denied pulling ${target.canonical} ${target.presenting} (HTTP ${response.status}${errorCodes(response.body)})${hint}`,
      );
    }
    return response;
  }
}
