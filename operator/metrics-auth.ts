import { createHash } from 'node:crypto';
import type { Clock } from './clock.ts';
import type { KubeApi, ResourceType } from './kube/client.ts';
import { errorMessage, type Logger } from './log.ts';

/**
 * Who may read /metrics, decided as controller-runtime's secure metrics server (and
 * kube-rbac-proxy) decide it: the scrape's bearer token goes to the API server in a TokenReview,
 * and the user it names in a SubjectAccessReview for `get` on the non-resource URL `/metrics`.
 * kopek's metrics name every workload and what it costs, so they are not public.
 *
 * Answers are cached for `ttlMs` (default 1 minute) by the token's SHA-256 (never the token
 * itself): Prometheus scrapes every 15-30 s, and without the cache every scrape would cost two
 * API calls. A revoked token or a removed RoleBinding therefore takes effect within one TTL.
 * Failures to ask (API server down) are not cached, and answer 503.
 */

export const TOKEN_REVIEWS: ResourceType = {
  group: 'authentication.k8s.io',
  version: 'v1',
  plural: 'tokenreviews',
  kind: 'TokenReview',
  namespaced: false,
};

export const SUBJECT_ACCESS_REVIEWS: ResourceType = {
  group: 'authorization.k8s.io',
  version: 'v1',
  plural: 'subjectaccessreviews',
  kind: 'SubjectAccessReview',
  namespaced: false,
};

/** The path scrapers must be allowed to `get`; the chart's metrics-reader ClusterRole grants it. */
export const METRICS_PATH = '/metrics';

export interface AuthDecision {
  /** 200 allowed, 401 no or invalid token, 403 not allowed, 503 could not ask the API server. */
  status: 200 | 401 | 403 | 503;
  /** For the response body and logs; never contains the token. */
  message: string;
}

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: UserInfo;
  error?: string;
}

interface Cached {
  decision: AuthDecision;
  expires: number;
}

/** Distinct tokens remembered at most; the oldest are forgotten first. */
const MAX_CACHED = 1024;

export class MetricsAuthorizer {
  private readonly client: KubeApi;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly ttlMs: number;
  private readonly cache = new Map<string, Cached>();

  constructor(options: { client: KubeApi; clock: Clock; log: Logger; ttlMs?: number }) {
    this.client = options.client;
    this.clock = options.clock;
    this.log = options.log;
    this.ttlMs = options.ttlMs ?? 60_000;
  }

  /** Decides a request from its `Authorization` header. */
  async authorize(authorization: string | undefined): Promise<AuthDecision> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (token === undefined)
      return { status: 401, message: 'a bearer token is required to read /metrics' };
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached && cached.expires > now) return cached.decision;
    this.cache.delete(key);

    let decision: AuthDecision;
    try {
      decision = await this.ask(token);
    } catch (error) {
      this.log.warn('could not check a metrics scrape with the API server', {
        error: errorMessage(error),
      });
      return { status: 503, message: 'cannot reach the API server to check the token' };
    }
    if (this.cache.size >= MAX_CACHED) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { decision, expires: now + this.ttlMs });
    return decision;
  }

  private async ask(token: string): Promise<AuthDecision> {
    const review = await this.client.create<{ status?: TokenReviewStatus }>(TOKEN_REVIEWS, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      // Reviews are not stored and have no name.
      metadata: { name: '' },
      spec: { token },
    });
    const user = review.status?.user;
    if (review.status?.authenticated !== true || user?.username === undefined)
      return { status: 401, message: 'the bearer token is not valid' };

    const access = await this.client.create<{ status?: { allowed?: boolean } }>(
      SUBJECT_ACCESS_REVIEWS,
      {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        metadata: { name: '' },
        spec: {
          user: user.username,
          ...(user.uid !== undefined ? { uid: user.uid } : {}),
          groups: user.groups ?? [],
          ...(user.extra !== undefined ? { extra: user.extra } : {}),
          nonResourceAttributes: { path: METRICS_PATH, verb: 'get' },
        },
      },
    );
    return access.status?.allowed === true
      ? { status: 200, message: 'allowed' }
      : {
          status: 403,
          message: `${user.username} may not get ${METRICS_PATH}: bind it to kopek's metrics-reader ClusterRole`,
        };
  }
}
