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
 */
import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { parseChallenge, type Challenge } from './challenge.ts';
import { selectCredentials, type RegistryCredentials } from './credentials.ts';
import { EcrTokenError, EcrTokenProvider, ecrRegistry } from './ecr.ts';
import { MANIFEST_ACCEPT, ManifestError, parseManifest, platformFromConfig } from './manifest.ts';
import {
  formatImageReference,
  manifestReference,
  parseImageReference,
  registryApiHost,
  type ImageReference,
} from './reference.ts';

export type RegistryErrorKind =
  'auth' | 'not-found' | 'timeout' | 'unreachable' | 'invalid-reference' | 'registry-error';

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

/** One HTTP exchange, for metrics and debug logs: no headers, no query string, no bodies. */
export interface RegistryRequestEvent {
  method: string;
  /** host[:port] the request went to (a registry or its token service). */
  host: string;
  path: string;
  status?: number;
  error?: RegistryErrorKind;
  durationMs: number;
}

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

const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_BACKOFF_MS = 10_000;
const USER_AGENT = 'kopek';

/** A failure of a known kind; its message is shown to people, so it never holds credentials. */
class LookupError extends Error {
  readonly kind: RegistryErrorKind;
  constructor(kind: RegistryErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

const PREFIX: Record<RegistryErrorKind, string> = {
  auth: 'authentication failed',
  'not-found': 'not found',
  timeout: 'timed out',
  unreachable: 'unreachable',
  'invalid-reference': 'invalid image reference',
  'registry-error': 'registry error',
};

interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
  /** Attempts made (1 + retries). */
  attempts: number;
}

type Outcome = { digest: string; platforms: string[] } | { error: FailedImage['error'] };

/** Whose credentials a lookup uses; part of every cache key, so one pod's secret never serves another. */
interface AuthSource {
  credentials?: RegistryCredentials;
  ecr: boolean;
  fingerprint: string;
}

/** One lookup: the image, where its registry API is, and the credentials to present. */
interface Target {
  ref: ImageReference;
  canonical: string;
  host: string;
  baseUrl: string;
  credentials?: RegistryCredentials;
  fingerprint: string;
  /** "without credentials (…)" / "with the credentials from secret a/b", for messages. */
  presenting: string;
}

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** A counting semaphore: at most `limit` tasks at once, the rest wait in order. */
class Semaphore {
  private readonly limit: number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    // The releasing task hands its slot over directly, so `active` stays counted.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next === undefined) this.active--;
      else next();
    }
  }
}

function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

/** Shares one promise among concurrent callers of the same key. */
function shared<T>(
  inflight: Map<string, Promise<T>>,
  key: string,
  start: () => Promise<T>,
): Promise<T> {
  let pending = inflight.get(key);
  if (pending === undefined) {
    pending = start().finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  return pending;
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

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if any. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The registry's error codes from a distribution error body ("MANIFEST_UNKNOWN"), if any. */
function errorCodes(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown }[] };
    const codes = (parsed.errors ?? [])
      .map((e) => e.code)
      .filter((c): c is string => typeof c === 'string' && /^[A-Z_]{1,40}$/.test(c));
    return codes.length > 0 ? ` ${codes.join(', ')}` : '';
  } catch {
    return '';
  }
}

/** Reads a body, refusing more than MAX_DOCUMENT_BYTES (manifests and configs are small). */
async function readLimited(response: Response, what: string): Promise<Buffer> {
  const tooLarge = (): LookupError =>
    new LookupError('registry-error', `the ${what} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  if (Number(response.headers.get('content-length') ?? '0') > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Node's fetch types leave the chunk type open; its bodies are byte streams.
  const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
  for (;;) {
    const chunk = await reader?.read();
    if (chunk === undefined || chunk.done) break;
    size += chunk.value.byteLength;
    if (size > MAX_DOCUMENT_BYTES) {
      await reader?.cancel();
      throw tooLarge();
    }
    chunks.push(chunk.value);
  }
  return Buffer.concat(chunks);
}

/** Turns a fetch failure into timeout / unreachable, with the system's error code when there is one. */
function networkError(
  error: unknown,
  registry: string,
  timeoutMs: number,
  what: string,
): LookupError {
  if (error instanceof LookupError) return error;
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError')
    return new LookupError(
      'timeout',
      `registry ${registry} did not answer within ${timeoutMs / 1000} s (${what})`,
    );
  const cause =
    error instanceof Error
      ? (error.cause as { code?: unknown; message?: unknown } | undefined)
      : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const detail =
    code ?? (typeof cause?.message === 'string' ? cause.message.slice(0, 200) : String(error));
  return new LookupError('unreachable', `could not connect to registry ${registry} (${detail})`);
}

/** Resolves images to their platforms; one instance per process, shared by all reconciles. */
export class RegistryClient {
  private readonly timeoutMs: number;
  private readonly maxConcurrent: number;
  private readonly cacheTtlMs: number;
  private readonly failureTtlMs: number;
  private readonly maxRetries: number;
  private readonly backoffBaseMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly maxEntries: number;
  private readonly clock: Clock;
  private readonly ecr: EcrTokenProvider;
  private readonly insecure: ReadonlySet<string>;
  private readonly onRequest: ((event: RegistryRequestEvent) => void) | undefined;

  /** Outcomes by credentials + canonical reference. */
  private readonly results = new Map<string, Expiring<Outcome>>();
  private readonly lookups = new Map<string, Promise<Outcome>>();
  /** Platforms by credentials + repository@digest: content-addressed, so never stale. */
  private readonly byDigest = new Map<string, string[]>();
  /** Each registry's challenge, learned from a `/v2/` ping. */
  private readonly challenges = new Map<string, Expiring<Challenge>>();
  private readonly pings = new Map<string, Promise<Challenge>>();
  private readonly tokens = new Map<string, Expiring<string>>();
  private readonly tokenFetches = new Map<string, Promise<string>>();
  private readonly limits = new Map<string, Semaphore>();

  constructor(options: RegistryClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxConcurrent = options.maxConcurrentPerRegistry ?? 8;
    this.cacheTtlMs = options.cacheTtlMs ?? 3_600_000;
    this.failureTtlMs = options.failureTtlMs ?? 60_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    this.maxEntries = options.maxCacheEntries ?? 10_000;
    this.clock = options.clock ?? systemClock;
    this.ecr = options.ecr ?? new EcrTokenProvider({ clock: this.clock });
    this.insecure = new Set(options.insecureRegistries ?? []);
    this.onRequest = options.onRequest;
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
    this.expectOk(target, response, what);
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
      this.expectOk(target, blob, blobWhat);
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

  private expectOk(target: Target, response: HttpResult, what: string): void {
    if (response.status === 200) return;
    const registry = target.ref.registry;
    const retried = response.attempts > 1 ? ` after ${response.attempts} attempts` : '';
    const detail = `HTTP ${response.status}${errorCodes(response.body)}`;
    if (response.status === 429)
      throw new LookupError(
        'registry-error',
        `registry ${registry} rate-limited ${what} for ${target.canonical} (${detail})${retried}`,
      );
    throw new LookupError(
      'registry-error',
      `registry ${registry} answered ${what} for ${target.canonical} with ${detail}${retried}`,
    );
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
    const challenge = await this.challenge(target);
    const authorization = await this.authorization(target, challenge, false);
    let response = await this.send(
      target.host,
      url,
      { method, headers: this.headers(accept, authorization) },
      target.ref.registry,
      what,
    );
    if (response.status === 401) {
      const fresh = parseChallenge(response.headers.get('www-authenticate'));
      if (fresh !== undefined) {
        setBounded(
          this.challenges,
          target.host,
          { value: fresh, expiresAt: this.clock.now() + this.cacheTtlMs },
          this.maxEntries,
        );
        const retry = await this.authorization(target, fresh, true);
        if (retry !== undefined && retry !== authorization)
          response = await this.send(
            target.host,
            url,
            { method, headers: this.headers(accept, retry) },
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

  private headers(accept: string, authorization: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { Accept: accept, 'User-Agent': USER_AGENT };
    if (authorization !== undefined) headers.Authorization = authorization;
    return headers;
  }

  /** The registry's challenge, from a `/v2/` ping shared by all lookups and cached. */
  private async challenge(target: Target): Promise<Challenge> {
    const cached = this.challenges.get(target.host);
    if (cached !== undefined && this.clock.now() < cached.expiresAt) return cached.value;
    return shared(this.pings, target.host, async () => {
      const what = 'GET /v2/';
      const response = await this.send(
        target.host,
        `${target.baseUrl}/v2/`,
        { headers: this.headers('application/json', undefined) },
        target.ref.registry,
        what,
      );
      const challenge: Challenge =
        response.status === 401
          ? (parseChallenge(response.headers.get('www-authenticate')) ?? { scheme: 'none' })
          : { scheme: 'none' };
      if (response.status >= 500 || response.status === 429) this.expectOk(target, response, what);
      setBounded(
        this.challenges,
        target.host,
        { value: challenge, expiresAt: this.clock.now() + this.cacheTtlMs },
        this.maxEntries,
      );
      return challenge;
    });
  }

  /** The Authorization header for a challenge, or undefined when there is nothing to present. */
  private async authorization(
    target: Target,
    challenge: Challenge,
    renew: boolean,
  ): Promise<string | undefined> {
    const credentials = target.credentials;
    if (challenge.scheme === 'none') return undefined;
    if (challenge.scheme === 'basic') {
      if (credentials?.username === undefined || credentials.password === undefined)
        return undefined;
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    }
    if (credentials?.registryToken !== undefined) return `Bearer ${credentials.registryToken}`;
    return `Bearer ${await this.token(target, challenge, renew)}`;
  }

  /** A bearer token for pulling the target's repository, from the challenge's realm; cached until it expires. */
  private async token(
    target: Target,
    challenge: Extract<Challenge, { scheme: 'bearer' }>,
    renew: boolean,
  ): Promise<string> {
    const scope = `repository:${target.ref.repository}:pull`;
    const key = `${target.fingerprint} ${challenge.realm} ${challenge.service ?? ''} ${scope}`;
    const cached = this.tokens.get(key);
    if (!renew && cached !== undefined && this.clock.now() < cached.expiresAt) return cached.value;
    if (renew) this.tokens.delete(key);
    return shared(this.tokenFetches, key, async () => {
      const token = await this.fetchToken(target, challenge, scope);
      setBounded(this.tokens, key, token, this.maxEntries);
      return token.value;
    });
  }

  private async fetchToken(
    target: Target,
    challenge: Extract<Challenge, { scheme: 'bearer' }>,
    scope: string,
  ): Promise<Expiring<string>> {
    const registry = target.ref.registry;
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new LookupError(
        'registry-error',
        `registry ${registry} names a token service that is not a URL`,
      );
    }
    // Credentials go to the realm only over HTTPS, unless the registry itself is a plain-HTTP test one.
    if (
      realm.protocol !== 'https:' &&
      !(realm.protocol === 'http:' && this.insecure.has(target.host))
    )
      throw new LookupError(
        'registry-error',
        `registry ${registry} names a token service that is not HTTPS (${realm.host})`,
      );
    const params = new URLSearchParams();
    if (challenge.service !== undefined) params.set('service', challenge.service);
    params.set('scope', scope);
    const credentials = target.credentials;
    const headers = this.headers('application/json', undefined);
    let init: RequestInit;
    if (credentials?.identityToken !== undefined) {
      // An identity token is an OAuth2 refresh token: exchanged with a POST, as docker does.
      params.set('grant_type', 'refresh_token');
      params.set('refresh_token', credentials.identityToken);
      params.set('client_id', USER_AGENT);
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: params.toString() };
    } else {
      if (credentials?.username !== undefined && credentials.password !== undefined)
        headers.Authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      for (const [name, value] of params) realm.searchParams.append(name, value);
      init = { headers };
    }
    const what = `token request to ${realm.host}`;
    const response = await this.send(realm.host, realm.toString(), init, registry, what);
    if (response.status === 401 || response.status === 403)
      throw new LookupError(
        'auth',
        `the token service of registry ${registry} (${realm.host}) refused a pull token for ${target.canonical} ${target.presenting} (HTTP ${response.status})`,
      );
    if (response.status !== 200)
      throw new LookupError(
        'registry-error',
        `the token service of registry ${registry} (${realm.host}) answered HTTP ${response.status} for ${target.canonical}`,
      );
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(response.body.toString('utf8')) as typeof body;
    } catch {
      throw new LookupError(
        'registry-error',
        `the token service of registry ${registry} (${realm.host}) sent a response that is not JSON`,
      );
    }
    const token =
      typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '')
      throw new LookupError(
        'registry-error',
        `the token service of registry ${registry} (${realm.host}) sent no token`,
      );
    // The spec's default lifetime is 60 s; renew a little early so a token never expires mid-request.
    const lifetime =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { value: token, expiresAt: this.clock.now() + Math.max(lifetime - 10, 5) * 1000 };
  }

  /** One request with the per-host limit, the timeout, and retries of 429/5xx. */
  private async send(
    host: string,
    url: string,
    init: RequestInit,
    registry: string,
    what: string,
  ): Promise<HttpResult> {
    let limit = this.limits.get(host);
    if (limit === undefined) {
      limit = new Semaphore(this.maxConcurrent);
      this.limits.set(host, limit);
    }
    const semaphore = limit;
    for (let attempt = 1; ; attempt++) {
      const response = await semaphore.run(() => this.once(host, url, init, registry, what));
      const retryable = response.status === 429 || response.status >= 500;
      if (!retryable || attempt > this.maxRetries) return { ...response, attempts: attempt };
      const asked = retryAfterMs(response.headers.get('retry-after'), this.clock.now());
      if (asked !== undefined && asked > this.maxRetryAfterMs)
        throw new LookupError(
          'registry-error',
          `registry ${registry} answered ${what} with HTTP ${response.status} and asked to retry after ${Math.round(asked / 1000)} s`,
        );
      const backoff =
        Math.min(this.backoffBaseMs * 2 ** (attempt - 1), MAX_BACKOFF_MS) * (0.5 + Math.random());
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, asked ?? backoff));
    }
  }

  private async once(
    host: string,
    url: string,
    init: RequestInit,
    registry: string,
    what: string,
  ): Promise<Omit<HttpResult, 'attempts'>> {
    const started = performance.now();
    const path = new URL(url).pathname;
    const method = init.method ?? 'GET';
    try {
      const response = await fetch(url, {
        ...init,
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const body = await readLimited(response, `response to ${what}`);
      this.onRequest?.({
        method,
        host,
        path,
        status: response.status,
        durationMs: performance.now() - started,
      });
      return { status: response.status, headers: response.headers, body };
    } catch (error) {
      const failure = networkError(error, registry, this.timeoutMs, what);
      this.onRequest?.({
        method,
        host,
        path,
        error: failure.kind,
        durationMs: performance.now() - started,
      });
      throw failure;
    }
  }
}
