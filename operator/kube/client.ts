import { createHash } from 'node:crypto';
import { Agent, fetch, ProxyAgent, type Dispatcher, type Response } from 'undici';
import type { KubeConnection, TlsMaterial } from './kubeconfig.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The byte that ends each event of a watch stream. */
const NEWLINE = 0x0a;

/**
 * A small JSON client for the Kubernetes API, authenticated as its KubeConnection says (TLS,
 * tokens, exec plugins, impersonation). kopek needs exact control over paging, watches and
 * server-side apply, which the generated clients hide, so it speaks HTTP itself.
 */

export interface ResourceType {
  /** "" for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** The collection path, cluster-wide or in one namespace. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const prefix = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return namespace !== undefined && type.namespaced
    ? `${prefix}/namespaces/${namespace}/${type.plural}`
    : `${prefix}/${type.plural}`;
}

export function objectPath(type: ResourceType, name: string, namespace?: string): string {
  return `${collectionPath(type, namespace)}/${encodeURIComponent(name)}`;
}

/** An error answer of the API server, with its HTTP status and `Status` reason. */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

/** What kopek sends: any object with a name (and namespace, for namespaced types). */
export interface ListOptions {
  limit?: number;
  continueToken?: string;
  signal?: AbortSignal;
  /** Only this namespace's objects (a namespaced type); default: every namespace. */
  namespace?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: unknown;
  status?: unknown;
}

export interface ObjectList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

/** Told of each response: `seconds` from the request's start to its headers (not for watches). */
export type RequestObserver = (
  verb: string,
  resource: string,
  status: number,
  seconds?: number,
) => void;

/** A JSON patch (RFC 6902) sent with kopek's own field manager; dryRun: validated, not stored. */
export interface PatchOptions {
  fieldManager: string;
  dryRun?: boolean;
}

export interface ApplyOptions {
  fieldManager: string;
  subresource?: 'status';
  force?: boolean;
}

/**
 * What the operator needs of the Kubernetes API. KubeClient speaks it over HTTP to a real API
 * server; the in-memory fake in operator/testing serves it for unit tests.
 */
export interface KubeApi {
  /** One page of a LIST; `continueToken` from the previous page's metadata.continue. */
  listPage<T>(type: ResourceType, options?: ListOptions): Promise<ObjectList<T>>;
  get<T>(type: ResourceType, name: string, namespace?: string): Promise<T>;
  /**
   * Opens a WATCH from `resourceVersion` and calls `onEvent` for each event. Resolves when the
   * server ends the stream (its timeoutSeconds passed), rejects on errors; `signal` aborts it.
   */
  watch(
    type: ResourceType,
    options: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (event: WatchEvent) => void,
  ): Promise<void>;
  /** Server-side apply of a whole object (or its status with `subresource: 'status'`). */
  apply<T>(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<T>;
  /**
   * As `apply`, for a caller that does not read the object the API server sends back: its body
   * is read as bytes and dropped, not decoded or parsed (a status write, thousands at a cold
   * start, answered with the whole object, its managedFields included).
   */
  applyUnread(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<void>;
  /**
   * A JSON patch (`application/json-patch+json`): atomic, so a failed `test` operation leaves
   * the object as it was (422 Invalid).
   */
  patch<T>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    operations: readonly unknown[],
    options: PatchOptions,
  ): Promise<T>;
  create<T>(type: ResourceType, object: KubeObject): Promise<T>;
  /** PUT with the object's resourceVersion: fails with 409 if someone else changed it first. */
  replace<T>(type: ResourceType, object: KubeObject): Promise<T>;
  /** Deletes; an object that is already gone is not an error. */
  delete(type: ResourceType, name: string, namespace?: string): Promise<void>;
  /** The API server's version (`/version`). */
  serverVersion(): Promise<{ major?: string; minor?: string; gitVersion?: string }>;
  /** Whether the API server serves a resource type (e.g. Argo Rollouts only where installed). */
  serves(type: ResourceType): Promise<boolean>;
}

export class KubeClient implements KubeApi {
  private readonly connection: KubeConnection;
  private readonly server: string;
  private readonly observe: RequestObserver;
  /** Bounds each non-watch request, so a black-holed connection cannot hang a reconcile. */
  readonly requestTimeoutMs: number;
  /**
   * The connection pool to the API server and the TLS material it was made with: one pool is
   * kept, so requests reuse its few TLS connections, and made again only when the TLS material
   * changes (a rotated client certificate).
   */
  private pool: { key: string; dispatcher: Dispatcher } | undefined;
  /** When each response's request was sent, for the observer's duration. */
  private readonly sentAt = new WeakMap<Response, number>();

  constructor(
    connection: KubeConnection,
    options: { observe?: RequestObserver; requestTimeoutMs?: number } = {},
  ) {
    this.connection = connection;
    this.server = connection.server.replace(/\/$/, '');
    this.observe = options.observe ?? (() => undefined);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  private async send(
    method: HttpMethod,
    path: string,
    options: {
      query?: Record<string, string>;
      body?: unknown;
      contentType?: string;
      signal?: AbortSignal;
      timeoutMs?: number;
    } = {},
  ): Promise<Response> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(options.query ?? {}))
      url.searchParams.set(key, value);
    const credentials = await this.connection.credentials();
    const headers: Record<string, string> = { accept: 'application/json', ...credentials.headers };
    if (options.body !== undefined)
      headers['content-type'] = options.contentType ?? 'application/json';
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.requestTimeoutMs);
    const sent = performance.now();
    const response = await fetch(url, {
      method,
      headers,
      dispatcher: this.dispatcher(credentials.tls),
      signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    this.sentAt.set(response, sent);
    return response;
  }

  /** Tells the observer of a response, with the time its request took. */
  private observed(verb: string, resource: string, response: Response): void {
    const sent = this.sentAt.get(response);
    this.observe(
      verb,
      resource,
      response.status,
      sent === undefined ? undefined : (performance.now() - sent) / 1000,
    );
  }

  /**
   * The pool for requests made with this TLS material: the kept one, or a new one. A replaced
   * pool is not closed: requests and watches may still be on it; its idle connections close by
   * themselves.
   */
  private dispatcher(tls: TlsMaterial): Dispatcher {
    const hash = createHash('sha256');
    for (const part of [tls.ca, tls.cert, tls.key, tls.servername])
      hash.update(part ?? '').update('\0');
    const key = hash.update(String(tls.rejectUnauthorized)).digest('hex');
    if (this.pool?.key === key) return this.pool.dispatcher;
    const connect = Object.fromEntries(
      Object.entries(tls).filter(([, value]) => value !== undefined),
    ) as TlsMaterial;
    const dispatcher = this.connection.proxyUrl
      ? new ProxyAgent({ uri: this.connection.proxyUrl, requestTls: connect })
      : new Agent({ connect });
    this.pool = { key, dispatcher };
    return dispatcher;
  }

  private async json<T>(verb: string, resource: string, response: Response): Promise<T> {
    this.observed(verb, resource, response);
    const text = await response.text();
    if (!response.ok) throw toApiError(response.status, text);
    return JSON.parse(text) as T;
  }

  async listPage<T>(type: ResourceType, options: ListOptions = {}): Promise<ObjectList<T>> {
    const query: Record<string, string> = { limit: String(options.limit ?? 500) };
    if (options.continueToken) query.continue = options.continueToken;
    const response = await this.send('GET', collectionPath(type, options.namespace), {
      query,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return this.json('list', type.plural, response);
  }

  async get<T>(type: ResourceType, name: string, namespace?: string): Promise<T> {
    return this.json('get', type.plural, await this.send('GET', objectPath(type, name, namespace)));
  }

  async watch(
    type: ResourceType,
    options: { resourceVersion: string; timeoutSeconds: number; signal: AbortSignal },
    onEvent: (event: WatchEvent) => void,
  ): Promise<void> {
    const query = {
      watch: 'true',
      allowWatchBookmarks: 'true',
      resourceVersion: options.resourceVersion,
      timeoutSeconds: String(options.timeoutSeconds),
    };
    const response = await this.send('GET', collectionPath(type), {
      query,
      signal: options.signal,
      // The server closes the stream after timeoutSeconds; allow a margin before giving up.
      timeoutMs: (options.timeoutSeconds + 30) * 1000,
    });
    this.observe('watch', type.plural, response.status);
    if (!response.ok || !response.body) throw toApiError(response.status, await response.text());
    // Read the stream of JSON lines directly: an abort or a broken connection rejects this loop
    // (node:readline over the same stream would neither end nor report it). Lines are cut from
    // the bytes and decoded one by one: a busy watch sends chunks of hundreds of KB, which
    // decoded whole would be strings V8 allocates in its old generation.
    const decoder = new TextDecoder();
    // The start of a line not ended yet, in pieces: a large object comes in many chunks.
    let unfinished: Uint8Array[] = [];
    for await (const chunk of response.body) {
      const bytes = chunk as Uint8Array;
      let start = 0;
      // A newline byte is never part of a multi-byte UTF-8 character.
      for (
        let newline = bytes.indexOf(NEWLINE);
        newline >= 0;
        newline = bytes.indexOf(NEWLINE, start)
      ) {
        let line = bytes.subarray(start, newline);
        if (unfinished.length > 0) {
          line = Buffer.concat([...unfinished, line]);
          unfinished = [];
        }
        const text = decoder.decode(line).trim();
        if (text !== '') onEvent(JSON.parse(text) as WatchEvent);
        start = newline + 1;
      }
      // Copied: the stream may reuse the chunk's memory.
      if (start < bytes.length) unfinished.push(bytes.slice(start));
    }
  }

  async apply<T>(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<T> {
    const response = await this.sendApply(type, object, options);
    return this.json(applyVerb(options), type.plural, response);
  }

  async applyUnread(type: ResourceType, object: KubeObject, options: ApplyOptions): Promise<void> {
    const response = await this.sendApply(type, object, options);
    this.observed(applyVerb(options), type.plural, response);
    if (!response.ok) throw toApiError(response.status, await response.text());
    // Read to its end (outside V8's heap): the HTTP/2 stream, or an HTTP/1.1 connection, is free
    // only then.
    await response.arrayBuffer();
  }

  private sendApply(
    type: ResourceType,
    object: KubeObject,
    options: ApplyOptions,
  ): Promise<Response> {
    const path =
      objectPath(type, object.metadata.name, object.metadata.namespace) +
      (options.subresource ? `/${options.subresource}` : '');
    const query: Record<string, string> = {
      fieldManager: options.fieldManager,
      fieldValidation: 'Strict',
    };
    if (options.force) query.force = 'true';
    return this.send('PATCH', path, {
      query,
      body: object,
      // client-node's patch helpers guess the content type; server-side apply needs this one.
      contentType: 'application/apply-patch+yaml',
    });
  }

  async patch<T>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    operations: readonly unknown[],
    options: PatchOptions,
  ): Promise<T> {
    const query: Record<string, string> = { fieldManager: options.fieldManager };
    if (options.dryRun) query.dryRun = 'All';
    const response = await this.send('PATCH', objectPath(type, name, namespace), {
      query,
      body: operations,
      contentType: 'application/json-patch+json',
    });
    return this.json('patch', type.plural, response);
  }

  async create<T>(type: ResourceType, object: KubeObject): Promise<T> {
    const response = await this.send('POST', collectionPath(type, object.metadata.namespace), {
      body: object,
    });
    return this.json('create', type.plural, response);
  }

  async replace<T>(type: ResourceType, object: KubeObject): Promise<T> {
    const response = await this.send(
      'PUT',
      objectPath(type, object.metadata.name, object.metadata.namespace),
      { body: object },
    );
    return this.json('update', type.plural, response);
  }

  async delete(type: ResourceType, name: string, namespace?: string): Promise<void> {
    const response = await this.send('DELETE', objectPath(type, name, namespace));
    this.observed('delete', type.plural, response);
    if (!response.ok && response.status !== 404)
      throw toApiError(response.status, await response.text());
    await response.body?.cancel();
  }

  async serverVersion(): Promise<{ major?: string; minor?: string; gitVersion?: string }> {
    return this.json('get', 'version', await this.send('GET', '/version'));
  }

  async serves(type: ResourceType): Promise<boolean> {
    const path = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
    const response = await this.send('GET', path);
    if (response.status === 404) {
      this.observed('discovery', type.plural, response);
      await response.body?.cancel();
      return false;
    }
    const resources = await this.json<{ resources: { name: string }[] }>(
      'discovery',
      type.plural,
      response,
    );
    return resources.resources.some((resource) => resource.name === type.plural);
  }
}

function toApiError(status: number, body: string): KubeApiError {
  try {
    const parsed = JSON.parse(body) as { reason?: string; message?: string };
    return new KubeApiError(status, parsed.reason ?? String(status), parsed.message ?? body);
  } catch {
    return new KubeApiError(status, String(status), body.slice(0, 500) || `HTTP ${status}`);
  }
}

/** The verb a server-side apply is counted under. */
export function applyVerb(options: ApplyOptions): 'apply' | 'apply-status' {
  return options.subresource ? 'apply-status' : 'apply';
}
