import { KubeApiError } from './kube/client.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { WorkQueue } from './queue.ts';

export interface WorkersOptions {
  /** The controller's name in metrics (controller-runtime's `controller` label). */
  controller: string;
  queue: WorkQueue;
  count: number;
  reconcile: (key: string) => Promise<void>;
  metrics: Metrics;
  log: Logger;
  /** Shuts the queue down when it aborts: the workers finish their keys and return. */
  signal: AbortSignal;
  /**
   * Called when a worker is done with a key and no key is queued or being reconciled (keys
   * waiting out a retry's backoff do not count), until the signal aborts. Must not throw.
   */
  onIdle?: () => void;
}

/**
 * Runs `count` workers over a queue until it shuts down, as controller-runtime does: a key that
 * fails is retried with its own backoff (a 409 conflict is expected and logged quietly), a key
 * that succeeds is forgotten, and every reconcile is counted and timed.
 */
export async function runWorkers(options: WorkersOptions): Promise<void> {
  const { controller, metrics, queue } = options;
  const stop = (): void => {
    queue.shutDown();
  };
  // A signal that is already aborted never fires its listeners.
  if (options.signal.aborted) stop();
  else options.signal.addEventListener('abort', stop, { once: true });
  metrics.maxConcurrentReconciles.set({ controller }, options.count);
  await Promise.all(Array.from({ length: options.count }, () => worker(options)));
}

async function worker(options: WorkersOptions): Promise<void> {
  const { controller, queue, metrics, log } = options;
  for (;;) {
    const key = await queue.get();
    if (key === undefined) return;
    metrics.activeWorkers.set({ controller }, queue.active);
    const started = performance.now();
    try {
      await options.reconcile(key);
      queue.forget(key);
      metrics.reconcileTotal.inc({ controller, result: 'success' });
    } catch (error) {
      metrics.reconcileTotal.inc({ controller, result: 'error' });
      metrics.reconcileErrors.inc({ controller });
      metrics.reconcileErrorsByReason.inc({ controller, reason: errorReason(error) });
      const conflict = error instanceof KubeApiError && error.status === 409;
      if (!conflict) metrics.sourceErrors.inc({ source: 'kube' });
      log[conflict ? 'debug' : 'warn']('reconcile failed; retrying', {
        controller,
        key,
        error: errorMessage(error),
        retries: queue.retries(key),
      });
      queue.addRateLimited(key);
    } finally {
      metrics.reconcileTime.observe({ controller }, (performance.now() - started) / 1000);
      queue.done(key);
      metrics.activeWorkers.set({ controller }, queue.active);
      if (queue.length === 0 && queue.active === 0 && !options.signal.aborted) options.onIdle?.();
    }
  }
}

/**
 * Why a reconcile failed, in few enough values for a metric label: the API server's status and
 * reason, a timeout, or the code of the connection error under fetch's "fetch failed".
 */
export function errorReason(error: unknown): string {
  if (error instanceof KubeApiError) return `${error.status} ${error.reason}`;
  if (!(error instanceof Error)) return 'unknown';
  if (error.name === 'TimeoutError') return 'timeout';
  if (error.name === 'AbortError') return 'aborted';
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  return error.name;
}
