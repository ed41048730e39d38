import { sleep, systemClock, type Clock, type Timer } from '../clock.ts';
import type { Logger } from '../log.ts';
import { errorMessage } from '../log.ts';
import { KubeApiError, type KubeApi, type ResourceType, type WatchEvent } from './client.ts';
import { sharedPrefix } from '../../recommender/objects/read.ts';

/**
 * A list-watch cache of one resource type, rebuilt for TypeScript because client-node's informer
 * stops silently on errors, never notices an idle watch and caches whole objects:
 * - paged LIST, then WATCH with bookmarks and a jittered timeout;
 * - 410 Gone → relist; any other error → back off with jitter (0.8 s → 30 s) and resume;
 * - an inactivity watchdog reconnects a watch that went silent; a periodic relist repairs drift;
 * - only a slim projection of each object is kept, and only of the objects `keep` accepts;
 * - handlers are told of changes and must only enqueue: a throwing handler is logged, not fatal.
 */

/** The fields every cached projection keeps. */
export interface CachedObject {
  metadata: {
    name: string;
    namespace?: string | undefined;
    uid?: string | undefined;
    resourceVersion?: string | undefined;
  };
}

export type ChangeType = 'add' | 'update' | 'delete';

export interface InformerObserver {
  relisted(resource: string, reason: RelistReason, objects: number): void;
  watchRestarted(resource: string, reason: WatchEndReason): void;
  event(resource: string, type: WatchEvent['type']): void;
}

export type RelistReason = 'initial' | 'expired' | 'periodic' | 'error';
export type WatchEndReason = 'timeout' | 'idle' | 'expired' | 'error';

export interface InformerOptions<T extends CachedObject> {
  type: ResourceType;
  client: KubeApi;
  /** Keeps only what kopek reads (never managedFields). */
  project: (object: Record<string, unknown>) => T;
  /**
   * Whether to cache an object at all (default: every one). One the cache holds that it no longer
   * accepts is removed, and handlers are told of a delete.
   */
  keep?: (object: T, raw: Record<string, unknown>) => boolean;
  onChange?: (change: ChangeType, object: T, previous?: T) => void;
  log: Logger;
  clock?: Clock;
  observer?: InformerObserver;
  pageSize?: number;
  /** Watch timeout, jittered between min and 2×min seconds (client-go uses 5–10 min). */
  minWatchTimeoutSeconds?: number;
  /** Reconnect a watch that delivered nothing (not even a bookmark) for this long. */
  idleTimeoutMs?: number;
  /** Relist this often to repair anything a watch may have missed. */
  relistIntervalMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export function objectKey(object: CachedObject): string {
  return object.metadata.namespace
    ? sharedPrefix(`${object.metadata.namespace}/`) + object.metadata.name
    : object.metadata.name;
}

/** Exponential backoff with ±20% jitter. */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  constructor(initialMs: number, maxMs: number) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
  }
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt++;
    return base * (0.8 + Math.random() * 0.4);
  }
  reset(): void {
    this.attempt = 0;
  }
}

class WatchEnded extends Error {
  readonly reason: WatchEndReason;
  constructor(reason: WatchEndReason) {
    super(`watch ended: ${reason}`);
    this.reason = reason;
  }
}

export class Informer<T extends CachedObject> {
  readonly resource: string;
  private readonly options: InformerOptions<T>;
  private readonly store = new Map<string, T>();
  private readonly clock: Clock;
  private resourceVersion = '';
  private syncedOnce = false;
  private lastEvent = 0;
  private running: AbortController | undefined;
  private currentWatch: AbortController | undefined;
  private relistDue = true;
  /** Waiting out the backoff after a failed list or watch: changes may be unseen. */
  private backingOff = false;
  private relistReason: RelistReason = 'initial';
  private loop: Promise<void> = Promise.resolve();
  private readonly syncWaiters: (() => void)[] = [];

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.resource = options.type.plural;
    this.clock = options.clock ?? systemClock;
  }

  /** True once the first LIST has filled the cache. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** When the last watch event (bookmarks included) or list arrived, in ms since the epoch; 0 before. */
  get lastEventAt(): number {
    return this.lastEvent;
  }

  get size(): number {
    return this.store.size;
  }

  /** Whether it waits to list or watch again after a failure (it may be missing changes). */
  get retrying(): boolean {
    return this.backingOff;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): IterableIterator<T> {
    return this.store.values();
  }

  /** Starts listing and watching; the cache is kept across stop/start. */
  start(): void {
    if (this.running) return;
    const running = new AbortController();
    this.running = running;
    this.loop = this.run(running.signal);
  }

  async stop(): Promise<void> {
    this.running?.abort();
    this.running = undefined;
    await this.loop;
  }

  waitForSync(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(
      this.options.backoffInitialMs ?? 800,
      this.options.backoffMaxMs ?? 30_000,
    );
    const relistTimer = this.clock.setInterval(() => {
      this.relistDue = true;
      this.relistReason = 'periodic';
      this.currentWatch?.abort(new WatchEnded('timeout'));
    }, this.options.relistIntervalMs ?? 3_600_000);
    try {
      while (!signal.aborted) {
        try {
          if (this.relistDue) {
            await this.relist(signal);
            backoff.reset();
          }
          await this.watchOnce(signal);
          backoff.reset();
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborts while watching
          if (!signal.aborted) this.options.observer?.watchRestarted(this.resource, 'timeout');
        } catch (error) {
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborts while watching
          if (signal.aborted) break;
          const reason =
            error instanceof WatchEnded ? error.reason : isGone(error) ? 'expired' : 'error';
          if (reason !== 'timeout') this.options.observer?.watchRestarted(this.resource, reason);
          if (reason === 'expired') {
            this.relistDue = true;
            this.relistReason = 'expired';
            this.options.log.info('resource version expired; relisting', {
              resource: this.resource,
            });
            continue;
          }
          if (reason === 'idle') {
            this.options.log.warn('watch went silent; reconnecting', { resource: this.resource });
            continue;
          }
          if (reason === 'timeout') continue;
          const delayMs = backoff.next();
          this.options.log.warn('list-watch failed; retrying', {
            resource: this.resource,
            error: errorMessage(error),
            retryInMs: Math.round(delayMs),
          });
          if (!this.syncedOnce || this.relistDue) this.relistReason = 'error';
          this.backingOff = true;
          try {
            await sleep(this.clock, delayMs, signal);
          } finally {
            this.backingOff = false;
          }
        }
      }
    } finally {
      relistTimer.cancel();
    }
  }

  /** Paged LIST, then replaces the cache, telling handlers of every difference. */
  private async relist(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let listVersion = '';
    do {
      const page = await this.options.client.listPage<Record<string, unknown>>(this.options.type, {
        limit: this.options.pageSize ?? 500,
        ...(continueToken ? { continueToken } : {}),
        signal,
      });
      for (const item of page.items) {
        const object = this.options.project(item);
        if (this.options.keep?.(object, item) === false) continue;
        fresh.set(objectKey(object), object);
      }
      // An empty continue token means the last page.
      continueToken = page.metadata.continue === '' ? undefined : page.metadata.continue;
      listVersion = page.metadata.resourceVersion ?? listVersion;
    } while (continueToken);

    for (const [key, previous] of this.store) {
      if (!fresh.has(key)) this.remove(key, previous);
    }
    for (const [key, object] of fresh) this.put(key, object);
    this.resourceVersion = listVersion;
    this.relistDue = false;
    this.lastEvent = this.clock.now();
    this.options.observer?.relisted(this.resource, this.relistReason, fresh.size);
    this.options.log.debug('listed', {
      resource: this.resource,
      objects: fresh.size,
      reason: this.relistReason,
    });
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    const minTimeout = this.options.minWatchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.floor(minTimeout * (1 + Math.random()));
    const idleTimeoutMs = this.options.idleTimeoutMs ?? 150_000;
    const watch = new AbortController();
    this.currentWatch = watch;
    let idleTimer: Timer | undefined;
    const armWatchdog = (): void => {
      idleTimer?.cancel();
      idleTimer = this.clock.setTimeout(() => {
        watch.abort(new WatchEnded('idle'));
      }, idleTimeoutMs);
    };
    const stopOnAbort = (): void => {
      watch.abort();
    };
    // A signal that is already aborted never fires its listeners.
    if (signal.aborted) return;
    signal.addEventListener('abort', stopOnAbort, { once: true });
    armWatchdog();
    try {
      await this.options.client.watch(
        this.options.type,
        { resourceVersion: this.resourceVersion, timeoutSeconds, signal: watch.signal },
        (event) => {
          armWatchdog();
          this.handle(event);
        },
      );
    } catch (error) {
      // An abort carries the reason it was aborted for (idle, periodic relist, stop).
      if (watch.signal.reason instanceof WatchEnded) throw watch.signal.reason;
      throw error;
    } finally {
      // Release the connection however the stream ended.
      if (!watch.signal.aborted) watch.abort();
      idleTimer?.cancel();
      signal.removeEventListener('abort', stopOnAbort);
      this.currentWatch = undefined;
    }
    if (watch.signal.reason instanceof WatchEnded) throw watch.signal.reason;
  }

  private handle(event: WatchEvent): void {
    this.lastEvent = this.clock.now();
    this.options.observer?.event(this.resource, event.type);
    if (event.type === 'ERROR') {
      const status = event.object as { code?: number; reason?: string; message?: string };
      throw new KubeApiError(
        status.code ?? 500,
        status.reason ?? 'WatchError',
        status.message ?? 'watch error',
      );
    }
    const version = (event.object.metadata as { resourceVersion?: string } | undefined)
      ?.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (version) this.resourceVersion = version;
      return;
    }
    const object = this.options.project(event.object);
    const key = objectKey(object);
    if (event.type === 'DELETED' || this.options.keep?.(object, event.object) === false) {
      const previous = this.store.get(key);
      if (previous) this.remove(key, previous, object);
    } else {
      this.put(key, object);
    }
    if (version) this.resourceVersion = version;
  }

  private put(key: string, object: T): void {
    const previous = this.store.get(key);
    if (previous && previous.metadata.resourceVersion === object.metadata.resourceVersion) return;
    this.store.set(key, object);
    this.notify(previous ? 'update' : 'add', object, previous);
  }

  private remove(key: string, previous: T, last?: T): void {
    this.store.delete(key);
    this.notify('delete', last ?? previous, previous);
  }

  private notify(change: ChangeType, object: T, previous?: T): void {
    try {
      this.options.onChange?.(change, object, previous);
    } catch (error) {
      this.options.log.error('change handler failed', {
        resource: this.resource,
        error: errorMessage(error),
      });
    }
  }
}

function isGone(error: unknown): boolean {
  return (
    error instanceof KubeApiError &&
    (error.status === 410 || error.reason === 'Expired' || error.reason === 'Gone')
  );
}
