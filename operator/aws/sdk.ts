/**
 * The AWS SDK clients kopek uses for prices, and what their errors mean. The SDK is imported
 * only when the first client is made, so commands that never call AWS (`kopek analyze` without
 * --live-prices) do not load it. Credentials come from the SDK's default provider chain: IRSA
 * (web identity token), EKS Pod Identity (container credentials endpoint), environment
 * variables, a profile; endpoints may be overridden the SDK's way (AWS_ENDPOINT_URL_PRICING,
 * AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_STS) or through `endpoints`.
 */
// Type-only imports: erased at run time, so they do not load the SDK.
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { PricingClient } from '@aws-sdk/client-pricing';

/** Every AWS call kopek makes, with the IAM action it needs (the chart README lists these). */
export const IAM_ACTIONS = {
  GetProducts: 'pricing:GetProducts',
  DescribeSpotPriceHistory: 'ec2:DescribeSpotPriceHistory',
  DescribeInstanceTypes: 'ec2:DescribeInstanceTypes',
  GetSpotPlacementScores: 'ec2:GetSpotPlacementScores',
} as const;

export type AwsCall = keyof typeof IAM_ACTIONS;
export const AWS_CALLS = Object.keys(IAM_ACTIONS) as AwsCall[];

/** The Pricing API is served from a few regions only; us-east-1 answers for every region's prices. */
export const PRICING_API_REGION = 'us-east-1';

export interface AwsClientOptions {
  /** The region whose EC2 data is read (the cluster's). */
  region: string;
  /** Endpoint overrides (tests); otherwise the SDK's own resolution, environment included. */
  endpoints?: { pricing?: string; ec2?: string };
  /** Attempts per call, retries of throttling and 5xx included (SDK standard retry strategy). */
  maxAttempts?: number;
  /** Milliseconds to connect, and to wait for a response. */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface AwsClients {
  region: string;
  pricing: PricingClient;
  ec2: EC2Client;
  pricingSdk: typeof import('@aws-sdk/client-pricing');
  ec2Sdk: typeof import('@aws-sdk/client-ec2');
  destroy(): void;
}

/**
 * Creates the Pricing and EC2 clients, loading the SDK on first use. Credentials are resolved
 * first, with the default chain alone (small): without any, the clients (the EC2 client alone
 * adds about 90 MiB to the process) are never loaded, and the CredentialsProviderError is thrown.
 */
export async function createAwsClients(options: AwsClientOptions): Promise<AwsClients> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  // One memoized chain for both clients (one AssumeRoleWithWebIdentity), refreshed before expiry.
  const credentials = defaultProvider({ clientConfig: { region: options.region } });
  await credentials();
  const [pricingSdk, ec2Sdk] = await Promise.all([
    import('@aws-sdk/client-pricing'),
    import('@aws-sdk/client-ec2'),
  ]);
  const common = {
    credentials,
    maxAttempts: options.maxAttempts ?? 5,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? 5000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
    },
  };
  const pricing = new pricingSdk.PricingClient({
    ...common,
    region: PRICING_API_REGION,
    ...(options.endpoints?.pricing ? { endpoint: options.endpoints.pricing } : {}),
  });
  const ec2 = new ec2Sdk.EC2Client({
    ...common,
    region: options.region,
    ...(options.endpoints?.ec2 ? { endpoint: options.endpoints.ec2 } : {}),
  });
  return {
    region: options.region,
    pricing,
    ec2,
    pricingSdk,
    ec2Sdk,
    destroy: () => {
      pricing.destroy();
      ec2.destroy();
    },
  };
}

/** What went wrong with an AWS call, in the terms kopek acts on. */
export type AwsFailure = 'NoCredentials' | 'AccessDenied' | 'Throttled' | 'Unavailable' | 'Failed';

const ACCESS_DENIED = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnauthorizedOperation',
  'UnauthorizedAccess',
  'AuthFailure',
]);
const THROTTLED = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/** Sorts an SDK error into what kopek does about it. */
export function classifyAwsError(error: unknown): AwsFailure {
  const e = error as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: unknown;
  };
  const name = e.name ?? '';
  if (name === 'CredentialsProviderError') return 'NoCredentials';
  if (ACCESS_DENIED.has(name) || e.$metadata?.httpStatusCode === 403) return 'AccessDenied';
  if (THROTTLED.has(name) || e.$metadata?.httpStatusCode === 429) return 'Throttled';
  if (
    UNREACHABLE.has(e.code ?? '') ||
    name === 'TimeoutError' ||
    (e.$metadata?.httpStatusCode ?? 0) >= 500
  )
    return 'Unavailable';
  return 'Failed';
}

/**
 * A one-line description of an SDK error, safe to log: SDK errors carry the service's message
 * about the call, never the credentials used.
 */
export function describeAwsError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: string }).code;
  const message = error.message === '' && code !== undefined ? code : error.message;
  return error.name === 'Error' ? message : `${error.name}: ${message}`;
}
