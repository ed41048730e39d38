/**
 * A client of the Prometheus HTTP API's instant queries (`POST /api/v1/query`), which
 * Prometheus, Thanos, Mimir and Amazon Managed Prometheus (through a SigV4 proxy) all serve.
 * It speaks the wire format and nothing more: what the answer means is the sources' business.
 */
import { readFile } from 'node:fs/promises';
import { Agent, fetch, type Dispatcher } from 'undici';
import { isRecord } from '../../recommender/objects/read.ts';

/** Why a query gave no usable answer; the message says it for a person. */
export class PrometheusError extends Error {
  override name = 'PrometheusError';
}

export interface PrometheusOptions {
  /** Base URL of the API, with any path prefix: http://prometheus:9090, http://mimir/prometheus. */
  url: string;
  /** Sent as `Authorization: Bearer`; read on every request, so a rotated token is picked up. */
  bearerTokenFile?: string;
  /** PEM bundle to trust for https, instead of the system's roots. */
  caFile?: string;
  /** Per query (default 30 s). */
  timeoutMs?: number;
}

/** One series of an instant vector. */
export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

export interface QueryAnswer {
  samples: VectorSample[];
  /** Prometheus's warnings: partial data from Thanos or Mimir, among others. */
  warnings: string[];
}

/** The largest answer read (a vector of a few thousand edges is a few MiB). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

interface ApiAnswer {
  status?: string;
  errorType?: string;
  error?: string;
  warnings?: unknown;
  data?: { resultType?: string; result?: unknown };
}

export class PrometheusClient {
  readonly url: string;
  private readonly options: PrometheusOptions;
  private readonly timeoutMs: number;
  private dispatcher: Dispatcher | undefined;

  constructor(options: PrometheusOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new PrometheusError(`${options.url} is not a URL like http://prometheus:9090`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new PrometheusError(`${options.url} must be an http:// or https:// URL`);
    this.url = options.url.replace(/\/+$/, '');
    this.options = options;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  private async tlsDispatcher(): Promise<Dispatcher | undefined> {
    if (this.options.caFile === undefined) return undefined;
    if (this.dispatcher === undefined) {
      const ca = await readFile(this.options.caFile, 'utf8').catch((error: unknown) => {
        throw new PrometheusError(
          `cannot read the Prometheus CA file ${this.options.caFile ?? ''}: ${(error as Error).message}`,
        );
      });
      this.dispatcher = new Agent({ connect: { ca } });
    }
    return this.dispatcher;
  }

  private async headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (this.options.bearerTokenFile !== undefined) {
      const token = await readFile(this.options.bearerTokenFile, 'utf8').catch((error: unknown) => {
        throw new PrometheusError(
          `cannot read the Prometheus bearer token file ${this.options.bearerTokenFile ?? ''}: ${(error as Error).message}`,
        );
      });
      headers.authorization = `Bearer ${token.trim()}`;
    }
    return headers;
  }

  /** An instant query; throws PrometheusError saying what went wrong. */
  async query(expr: string): Promise<QueryAnswer> {
    const endpoint = `${this.url}/api/v1/query`;
    const dispatcher = await this.tlsDispatcher();
    let text: string;
    let status: number;
    try {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: await this.headers(),
        body: new URLSearchParams({ query: expr }).toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
        ...(dispatcher !== undefined ? { dispatcher } : {}),
      });
      status = response.status;
      const length = Number(response.headers.get('content-length') ?? 0);
      if (length > MAX_ANSWER_BYTES)
        throw new PrometheusError(`Prometheus at ${this.url} answered ${length} bytes, too many`);
      text = await response.text();
    } catch (error) {
      throw networkError(error, this.url, this.timeoutMs);
    }
    return parseAnswer(text, status, this.url);
  }
}

function networkError(error: unknown, url: string, timeoutMs: number): PrometheusError {
  if (error instanceof PrometheusError) return error;
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError')
    return new PrometheusError(`Prometheus at ${url} did not answer within ${timeoutMs / 1000} s`);
  const cause =
    error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  const detail =
    typeof cause?.code === 'string'
      ? cause.code
      : error instanceof Error
        ? error.message
        : String(error);
  return new PrometheusError(`could not reach Prometheus at ${url} (${detail})`);
}

/** The API's JSON answer → samples, or a PrometheusError naming the problem. */
export function parseAnswer(text: string, status: number, url: string): QueryAnswer {
  let answer: ApiAnswer;
  try {
    answer = JSON.parse(text) as ApiAnswer;
  } catch {
    const start = text.trim().slice(0, 200);
    throw new PrometheusError(
      `Prometheus at ${url} answered HTTP ${status} without the API's JSON${start ? `: ${start}` : ''}`,
    );
  }
  if (answer.status !== 'success') {
    throw new PrometheusError(
      `Prometheus at ${url} answered HTTP ${status}: ${answer.errorType ?? 'error'}: ${answer.error ?? 'no detail'}`,
    );
  }
  if (answer.data?.resultType !== 'vector' || !Array.isArray(answer.data.result)) {
    throw new PrometheusError(
      `the query must give an instant vector; Prometheus at ${url} answered a ${answer.data?.resultType ?? 'nothing'}`,
    );
  }
  const samples: VectorSample[] = [];
  for (const item of answer.data.result as { metric?: unknown; value?: unknown }[]) {
    const value = Array.isArray(item.value) ? Number(item.value[1]) : Number.NaN;
    if (!Number.isFinite(value) || value < 0) continue;
    const metric: Record<string, string> = {};
    if (isRecord(item.metric))
      for (const [k, v] of Object.entries(item.metric)) if (typeof v === 'string') metric[k] = v;
    samples.push({ metric, value });
  }
  const warnings = Array.isArray(answer.warnings)
    ? answer.warnings.filter((w): w is string => typeof w === 'string')
    : [];
  return { samples, warnings };
}
