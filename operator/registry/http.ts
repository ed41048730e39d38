/**
 * The registry client's transport: one request with a per-host concurrency limit, a timeout,
 * a size limit on bodies, and retries of 429/5xx with backoff honouring Retry-After. Every
 * failure becomes a LookupError of a known kind whose message names only hosts and statuses.
 */
import type { Clock } from '../clock.ts';

export type RegistryErrorKind =
  'auth' | 'not-found' | 'timeout' | 'unreachable' | 'invalid-reference' | 'registry-error';

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

const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_BACKOFF_MS = 10_000;
export const USER_AGENT = 'kopek';

/** A failure of a known kind; its message is shown to people, so it never holds credentials. */
export class LookupError extends Error {
  readonly kind: RegistryErrorKind;
  constructor(kind: RegistryErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
  /** Attempts made (1 + retries). */
  attempts: number;
}

export interface Expiring<T> {
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

export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

/** Shares one promise among concurrent callers of the same key. */
export function shared<T>(
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

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if any. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The registry's error codes from a distribution error body ("MANIFEST_UNKNOWN"), if any. */
export function errorCodes(body: Buffer): string {
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

/** Throws the LookupError for an answer other than 200, naming the image and the registry. */
export function expectOk(
  registry: string,
  canonical: string,
  response: HttpResult,
  what: string,
): void {
  if (response.status === 200) return;
  const retried = response.attempts > 1 ? ` after ${response.attempts} attempts` : '';
  const detail = `HTTP ${response.status}${errorCodes(response.body)}`;
  if (response.status === 429)
    throw new LookupError(
      'registry-error',
      `registry ${registry} rate-limited ${what} for ${canonical} (${detail})${retried}`,
    );
  throw new LookupError(
    'registry-error',
    `registry ${registry} answered ${what} for ${canonical} with ${detail}${retried}`,
  );
}

export function requestHeaders(
  accept: string,
  authorization: string | undefined,
): Record<string, string> {
  const headers: Record<string, string> = { Accept: accept, 'User-Agent': USER_AGENT };
  if (authorization !== undefined) headers.Authorization = authorization;
  return headers;
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

export interface RegistryHttpOptions {
  /** Per HTTP request, body included. */
  timeoutMs: number;
  /** Requests in flight per host. */
  maxConcurrentPerRegistry: number;
  /** Retries after a 429 or 5xx. */
  maxRetries: number;
  /** First backoff between retries (doubling, with jitter, at most 10 s). */
  backoffBaseMs: number;
  /** A Retry-After longer than this is not waited for: the request fails. */
  maxRetryAfterMs: number;
  clock: Clock;
  onRequest: ((event: RegistryRequestEvent) => void) | undefined;
}

export class RegistryHttp {
  private readonly timeoutMs: number;
  private readonly maxConcurrent: number;
  private readonly maxRetries: number;
  private readonly backoffBaseMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly clock: Clock;
  private readonly onRequest: ((event: RegistryRequestEvent) => void) | undefined;
  private readonly limits = new Map<string, Semaphore>();

  constructor(options: RegistryHttpOptions) {
    this.timeoutMs = options.timeoutMs;
    this.maxConcurrent = options.maxConcurrentPerRegistry;
    this.maxRetries = options.maxRetries;
    this.backoffBaseMs = options.backoffBaseMs;
    this.maxRetryAfterMs = options.maxRetryAfterMs;
    this.clock = options.clock;
    this.onRequest = options.onRequest;
  }

  /** One request with the per-host limit, the timeout, and retries of 429/5xx. */
  async send(
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
