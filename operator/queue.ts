import { systemClock, type Clock, type Timer } from './clock.ts';
import type { QueueMetrics } from './metrics.ts';

/**
 * A work queue of keys with the guarantees controller-runtime's gives Go controllers:
 * a key is never queued twice, never handed to two workers at once (a key added while it is
 * being processed is queued again when the worker is done), per-key exponential backoff for
 * retries (5 ms → 1000 s), and a global token bucket over all rate-limited adds. Keys wait in
 * three lanes, as in controller-runtime's priority queue: `high` ones are handed out first,
 * `low` ones (bulk refreshes) only when no other key waits, so a burst of them does not delay a
 * change behind it. A key added again with a higher priority moves up.
 */
export type Priority = 'high' | 'normal' | 'low';

/** The lanes in the order keys are handed out. */
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

export interface WorkQueueOptions {
  name: string;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Token bucket for rate-limited adds: steady rate and burst. */
  qps?: number;
  burst?: number;
  metrics?: QueueMetrics;
  clock?: Clock;
}

export class WorkQueue {
  readonly name: string;
  private readonly lanes: Record<Priority, string[]> = { high: [], normal: [], low: [] };
  /** Dirty keys (queued, or to be queued when their worker is done) and their priority. */
  private readonly dirty = new Map<string, Priority>();
  private readonly processing = new Map<string, number>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, Timer>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly metrics: QueueMetrics | undefined;
  private readonly clock: Clock;
  private tokens: number;
  private lastRefill: number;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 1_000_000;
    this.qps = options.qps ?? 10;
    this.burst = options.burst ?? 100;
    this.metrics = options.metrics;
    this.clock = options.clock ?? systemClock;
    this.tokens = this.burst;
    this.lastRefill = this.clock.now();
  }

  get length(): number {
    return this.lanes.high.length + this.lanes.normal.length + this.lanes.low.length;
  }

  /** Keys currently handed to workers. */
  get active(): number {
    return this.processing.size;
  }

  /** Keys waiting out a retry's backoff (or another delayed add) before they are queued. */
  get delayedCount(): number {
    return this.delayed.size;
  }

  /** The keys `delayedCount` counts. */
  delayedKeys(): IterableIterator<string> {
    return this.delayed.keys();
  }

  /** Queues the key in the lane of its priority (see the class). */
  add(key: string, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    const queued = this.dirty.get(key);
    if (queued !== undefined) {
      if (PRIORITIES.indexOf(priority) < PRIORITIES.indexOf(queued)) this.promote(key, priority);
      return;
    }
    this.metrics?.adds.inc({ name: this.name });
    this.dirty.set(key, priority);
    this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds the key after `delayMs` (one pending delayed add per key; the earliest wins). */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    if (this.delayed.has(key)) return;
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, timer);
  }

  /** Retry: adds the key after the larger of its own backoff and the global bucket's wait. */
  addRateLimited(key: string): void {
    this.metrics?.retries.inc({ name: this.name });
    this.addAfter(key, Math.max(this.backoffFor(key), this.bucketDelay()));
  }

  /** The key succeeded: its backoff starts again from the base delay. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times the key has been retried since it last succeeded. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to work on; undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    // Keys still queued are dropped, not worked off: shutting down (a SIGTERM, a lost lease)
    // must not wait for a backlog, nor write without the lease; the next leader recomputes all.
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.lanes.high.shift() ?? this.lanes.normal.shift() ?? this.lanes.low.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The worker finished with the key; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    const started = this.processing.get(key);
    this.processing.delete(key);
    if (started !== undefined)
      this.metrics?.workDuration.observe({ name: this.name }, (this.clock.now() - started) / 1000);
    if (this.dirty.has(key)) this.push(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const timer of this.delayed.values()) timer.cancel();
    this.delayed.clear();
    for (const resolve of this.waiters.splice(0)) resolve(undefined);
  }

  /** Seconds of work in progress, and of the longest-running item (controller-runtime's gauges). */
  unfinishedWork(): { totalSeconds: number; longestSeconds: number } {
    const now = this.clock.now();
    let total = 0;
    let longest = 0;
    for (const started of this.processing.values()) {
      const seconds = (now - started) / 1000;
      total += seconds;
      longest = Math.max(longest, seconds);
    }
    return { totalSeconds: total, longestSeconds: longest };
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(this.take(key));
      return;
    }
    this.lanes[this.dirty.get(key) ?? 'normal'].push(key);
    this.metrics?.depth.set({ name: this.name }, this.length);
  }

  /** A key added again with a higher priority moves to the end of that lane. */
  private promote(key: string, priority: Priority): void {
    const lane = this.lanes[this.dirty.get(key) ?? 'normal'];
    this.dirty.set(key, priority);
    const at = lane.indexOf(key);
    if (at < 0) return; // being processed: it comes back in its new lane when done
    lane.splice(at, 1);
    this.lanes[priority].push(key);
  }

  private take(key: string): string {
    this.dirty.delete(key);
    const now = this.clock.now();
    this.processing.set(key, now);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined)
      this.metrics?.queueDuration.observe({ name: this.name }, (now - added) / 1000);
    this.metrics?.depth.set({ name: this.name }, this.length);
    return key;
  }

  private backoffFor(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** failures);
  }

  /** Takes a token from the bucket; returns how long the caller must wait for it. */
  private bucketDelay(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.qps);
    this.lastRefill = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
}
