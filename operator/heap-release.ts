/**
 * Gives back the heap pages V8 has freed but keeps. After a burst of work (the cold start's
 * lists, a relist, a storm of changes) V8's heap shrinks, but it pools the pages it freed and
 * they stay resident until a memory-reducing GC, which V8 does not start by itself in kopek,
 * busy or quiet (decision 0018: ~90 MiB of a 276 MiB RSS at 1,000 workloads). So when the heap
 * has shrunk far below its peak and the event loop is not busy, kopek asks for one. It needs
 * Node's `--expose-gc` (the chart's and the image's NODE_OPTIONS); without it this is off.
 */
import type { Clock, Timer } from './clock.ts';

export interface HeapReleaseOptions {
  /** Node's gc(), present under --expose-gc. */
  gc: NodeJS.GCFunction | undefined;
  clock: Clock;
  /** The bytes V8's heap holds now (process.memoryUsage().heapTotal). */
  heapCommitted: () => number;
  /** The event loop's utilization since the last call, 0–1. */
  busy: () => number;
  /** Called after each release with the heap it left and how long the GC took. */
  released: (result: { heapBefore: number; heapAfter: number; seconds: number }) => void;
  intervalMs?: number;
  /** How far the heap must have shrunk below its peak since the last release. */
  minShrinkBytes?: number;
  /** Above this event-loop utilization, wait: the pages will likely be needed again soon. */
  maxBusy?: number;
}

export const HEAP_RELEASE_DEFAULTS = {
  intervalMs: 10_000,
  minShrinkBytes: 32 * 2 ** 20,
  maxBusy: 0.5,
};

/** Starts the periodic check; undefined when gc() is not exposed. */
export function startHeapRelease(options: HeapReleaseOptions): Timer | undefined {
  const { gc } = options;
  if (gc === undefined) return undefined;
  const { intervalMs, minShrinkBytes, maxBusy } = { ...HEAP_RELEASE_DEFAULTS, ...options };
  let peak = options.heapCommitted();
  return options.clock.setInterval(() => {
    const heapBefore = options.heapCommitted();
    peak = Math.max(peak, heapBefore);
    // Read every tick, so that each reading covers one interval.
    const busy = options.busy();
    if (peak - heapBefore < minShrinkBytes || busy > maxBusy) return;
    const started = performance.now();
    // 'last-resort' is the flavor that reduces the memory footprint: it returns pooled pages.
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const heapAfter = options.heapCommitted();
    peak = heapAfter;
    options.released({ heapBefore, heapAfter, seconds: (performance.now() - started) / 1000 });
  }, intervalMs);
}
