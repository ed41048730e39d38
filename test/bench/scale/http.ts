/**
 * The benchmark's own Kubernetes API client: the HTTP stack kopek uses (undici's fetch, with
 * TLS, tokens and impersonation from kopek's KubeConnection), minus everything else. By default
 * it asks for the credentials once and keeps one connection pool; with `agentPerRequest` it asks
 * before every request and makes a new pool each time, so the floor can show what that costs.
 */
import { Agent, fetch, type Dispatcher } from 'undici';
import type { HttpMethod } from '../../../operator/kube/client.ts';
import type { KubeConnection } from '../../../operator/kube/kubeconfig.ts';

export interface ApiResponse {
  status: number;
  text: string;
}

export interface RequestOptions {
  query?: Record<string, string>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

export class BenchApi {
  private readonly connection: KubeConnection;
  private readonly server: string;
  private readonly agentPerRequest: boolean;
  private shared: Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> | undefined;

  constructor(connection: KubeConnection, options: { agentPerRequest?: boolean } = {}) {
    this.connection = connection;
    this.server = connection.server.replace(/\/$/, '');
    this.agentPerRequest = options.agentPerRequest ?? false;
  }

  private async authenticate(): Promise<{
    headers: Record<string, string>;
    dispatcher: Dispatcher;
  }> {
    const { headers, tls } = await this.connection.credentials();
    return { headers, dispatcher: new Agent({ connect: tls }) };
  }

  async request(
    method: HttpMethod,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResponse> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(options.query ?? {}))
      url.searchParams.set(key, value);
    const auth = this.agentPerRequest
      ? await this.authenticate()
      : await (this.shared ??= this.authenticate());
    const headers: Record<string, string> = { ...auth.headers, accept: 'application/json' };
    if (options.body !== undefined)
      headers['content-type'] = options.contentType ?? 'application/json';
    const response = await fetch(url, {
      method,
      headers,
      dispatcher: auth.dispatcher,
      signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    return { status: response.status, text: await response.text() };
  }

  /** A request that must succeed (2xx, or one of `accept`); returns the parsed body. */
  async json<T>(
    method: HttpMethod,
    path: string,
    options: RequestOptions & { accept?: readonly number[] } = {},
  ): Promise<T> {
    const response = await this.request(method, path, options);
    const ok =
      (response.status >= 200 && response.status < 300) ||
      options.accept?.includes(response.status);
    if (!ok)
      throw new Error(`${method} ${path}: HTTP ${response.status}: ${response.text.slice(0, 300)}`);
    return (response.text === '' ? {} : JSON.parse(response.text)) as T;
  }

  /** Server-side apply (of the status with `/status` at the end of the path). */
  apply<T>(path: string, object: unknown, fieldManager: string): Promise<T> {
    return this.json<T>('PATCH', path, {
      query: { fieldManager, force: 'true' },
      body: object,
      contentType: 'application/apply-patch+yaml',
    });
  }

  /** Every item of a collection, by pages of `limit`. */
  async listAll<T>(path: string, limit = 500): Promise<T[]> {
    const items: T[] = [];
    let continueToken: string | undefined;
    do {
      const page = await this.json<{ items: T[]; metadata: { continue?: string } }>('GET', path, {
        query: { limit: String(limit), ...(continueToken ? { continue: continueToken } : {}) },
      });
      items.push(...page.items);
      // An empty continue token means the last page.
      continueToken = page.metadata.continue === '' ? undefined : page.metadata.continue;
    } while (continueToken);
    return items;
  }

  async close(): Promise<void> {
    const shared = await this.shared;
    await shared?.dispatcher.close();
  }
}
