/**
 * Amazon ECR credentials for private ECR images: GetAuthorizationToken with the default AWS
 * credential chain (IRSA / EKS Pod Identity in the cluster). One token serves every registry
 * the operator's role may read in a region, so tokens are cached per region until shortly
 * before they expire. The AWS SDK is imported only when the first ECR image is looked up.
 */
// A type-only import: erased at run time, so it does not load the SDK.
import type { ECRClient } from '@aws-sdk/client-ecr';
import { systemClock, type Clock } from '../clock.ts';
import type { RegistryCredentials } from './credentials.ts';

/** An ECR registry host: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` or dual-stack `…dkr-ecr.<region>.on.aws`. */
const ECR_HOST =
  /^(\d{12})\.(?:dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?|dkr-ecr\.([a-z0-9-]+)\.on\.aws)$/;

/** The account and region of an ECR registry host, or undefined for any other host. */
export function ecrRegistry(host: string): { accountId: string; region: string } | undefined {
  const match = ECR_HOST.exec(host.toLowerCase());
  const accountId = match?.[1];
  const region = match?.[2] ?? match?.[3];
  return accountId === undefined || region === undefined ? undefined : { accountId, region };
}

/** What GetAuthorizationToken returns: base64 "AWS:password" and when it expires. */
export interface EcrAuthorization {
  token: string;
  expiresAt: Date;
}

/** Fetches an authorization token for a region; the default calls the ECR API. */
export type EcrTokenFetcher = (region: string) => Promise<EcrAuthorization>;

export interface EcrTokenProviderOptions {
  fetchToken?: EcrTokenFetcher;
  clock?: Clock;
  /** Renew this long before expiry (tokens last 12 h). Default 15 min. */
  refreshBeforeMs?: number;
}

/** The error an ECR token failure surfaces as: safe to show, it names the region only. */
export class EcrTokenError extends Error {
  override name = 'EcrTokenError';
}

interface CachedToken {
  credentials: RegistryCredentials;
  expiresAt: number;
}

/** Caches and shares ECR tokens per region; concurrent lookups share one API call. */
export class EcrTokenProvider {
  private readonly fetchToken: EcrTokenFetcher;
  private readonly clock: Clock;
  private readonly refreshBeforeMs: number;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();

  constructor(options: EcrTokenProviderOptions = {}) {
    this.fetchToken = options.fetchToken ?? sdkFetchToken();
    this.clock = options.clock ?? systemClock;
    this.refreshBeforeMs = options.refreshBeforeMs ?? 15 * 60_000;
  }

  /**
   * Basic credentials (user "AWS") for an ECR host, or undefined when the host is not ECR.
   * @throws EcrTokenError when no token can be had (no AWS credentials, access denied, …).
   */
  async credentialsFor(host: string): Promise<RegistryCredentials | undefined> {
    const registry = ecrRegistry(host);
    if (registry === undefined) return undefined;
    const { region } = registry;
    const cached = this.tokens.get(region);
    if (cached !== undefined && this.clock.now() < cached.expiresAt - this.refreshBeforeMs)
      return { ...cached.credentials, registry: host };
    let pending = this.inflight.get(region);
    if (pending === undefined) {
      pending = this.fetch(region).finally(() => this.inflight.delete(region));
      this.inflight.set(region, pending);
    }
    const fresh = await pending;
    return { ...fresh.credentials, registry: host };
  }

  private async fetch(region: string): Promise<CachedToken> {
    let authorization: EcrAuthorization;
    try {
      authorization = await this.fetchToken(region);
    } catch (error) {
      // SDK errors carry a name and a message about the call, never the credentials used.
      const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new EcrTokenError(`could not get an Amazon ECR token for ${region}: ${detail}`);
    }
    const decoded = Buffer.from(authorization.token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new EcrTokenError(`Amazon ECR returned a malformed token for ${region}`);
    const token: CachedToken = {
      credentials: {
        registry: '',
        username: decoded.slice(0, colon),
        password: decoded.slice(colon + 1),
        source: `Amazon ECR token for ${region}`,
      },
      expiresAt: authorization.expiresAt.getTime(),
    };
    this.tokens.set(region, token);
    return token;
  }
}

/** The real fetcher: one ECR client per region, created on first use from a lazily imported SDK. */
function sdkFetchToken(): EcrTokenFetcher {
  const clients = new Map<string, ECRClient>();
  return async (region) => {
    const sdk = await import('@aws-sdk/client-ecr');
    let client = clients.get(region);
    if (client === undefined) {
      client = new sdk.ECRClient({ region });
      clients.set(region, client);
    }
    const response = await client.send(new sdk.GetAuthorizationTokenCommand({}));
    const data = response.authorizationData?.[0];
    if (data?.authorizationToken === undefined || data.expiresAt === undefined)
      throw new Error('the response has no authorizationData');
    return { token: data.authorizationToken, expiresAt: data.expiresAt };
  };
}
