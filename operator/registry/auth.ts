/**
 * How the registry client authenticates, the way `docker pull` does: a `/v2/` ping learns each
 * registry's challenge once, then basic credentials or a bearer token from the challenge's realm
 * (exchanging an identity token with a POST). Challenges and tokens are cached, and concurrent
 * callers share one request.
 */
import type { Clock } from '../clock.ts';
import { parseChallenge, type Challenge } from './challenge.ts';
import type { RegistryCredentials } from './credentials.ts';
import {
  LookupError,
  expectOk,
  USER_AGENT,
  requestHeaders,
  setBounded,
  shared,
  type Expiring,
  type HttpResult,
  type RegistryHttp,
} from './http.ts';
import type { ImageReference } from './reference.ts';

/** One lookup: the image, where its registry API is, and the credentials to present. */
export interface Target {
  ref: ImageReference;
  canonical: string;
  host: string;
  baseUrl: string;
  credentials?: RegistryCredentials;
  fingerprint: string;
  /** "without credentials (…)" / "with the credentials from secret a/b", for messages. */
  presenting: string;
}

export interface RegistryAuthOptions {
  http: RegistryHttp;
  clock: Clock;
  /** How long a learned challenge is trusted. */
  challengeTtlMs: number;
  maxEntries: number;
  /** host:port registries served over plain HTTP, whose token service may be plain HTTP too. */
  insecure: ReadonlySet<string>;
}

export class RegistryAuth {
  private readonly http: RegistryHttp;
  private readonly clock: Clock;
  private readonly challengeTtlMs: number;
  private readonly maxEntries: number;
  private readonly insecure: ReadonlySet<string>;
  /** Each registry's challenge, learned from a `/v2/` ping. */
  private readonly challenges = new Map<string, Expiring<Challenge>>();
  private readonly pings = new Map<string, Promise<Challenge>>();
  private readonly tokens = new Map<string, Expiring<string>>();
  private readonly tokenFetches = new Map<string, Promise<string>>();

  constructor(options: RegistryAuthOptions) {
    this.http = options.http;
    this.clock = options.clock;
    this.challengeTtlMs = options.challengeTtlMs;
    this.maxEntries = options.maxEntries;
    this.insecure = options.insecure;
  }

  /** Takes the challenge of a 401 answer as the registry's; undefined when it sent none. */
  relearn(target: Target, response: HttpResult): Challenge | undefined {
    const fresh = parseChallenge(response.headers.get('www-authenticate'));
    if (fresh !== undefined) this.remember(target.host, fresh);
    return fresh;
  }

  private remember(host: string, challenge: Challenge): void {
    setBounded(
      this.challenges,
      host,
      { value: challenge, expiresAt: this.clock.now() + this.challengeTtlMs },
      this.maxEntries,
    );
  }

  /** The registry's challenge, from a `/v2/` ping shared by all lookups and cached. */
  async challenge(target: Target): Promise<Challenge> {
    const cached = this.challenges.get(target.host);
    if (cached !== undefined && this.clock.now() < cached.expiresAt) return cached.value;
    return shared(this.pings, target.host, async () => {
      const what = 'GET /v2/';
      const response = await this.http.send(
        target.host,
        `${target.baseUrl}/v2/`,
        { headers: requestHeaders('application/json', undefined) },
        target.ref.registry,
        what,
      );
      const challenge: Challenge =
        response.status === 401
          ? (parseChallenge(response.headers.get('www-authenticate')) ?? { scheme: 'none' })
          : { scheme: 'none' };
      if (response.status >= 500 || response.status === 429)
        expectOk(target.ref.registry, target.canonical, response, what);
      this.remember(target.host, challenge);
      return challenge;
    });
  }

  /** The Authorization header for a challenge, or undefined when there is nothing to present. */
  async authorization(
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
    const headers = requestHeaders('application/json', undefined);
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
    const response = await this.http.send(realm.host, realm.toString(), init, registry, what);
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
}
