import {
  constants,
  PerformanceObserver,
  type NodeGCPerformanceDetail,
  type PerformanceEntry,
} from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { errorMessage, type Logger } from './log.ts';

/** V8's gc() with the options of its `--expose-gc` extension that this module uses. */
type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collect: Collect | undefined;

/**
 * Gives back to the system the heap pages V8 keeps for reuse after full collections
 * (docs/decisions/0022): a last-resort collection, which reduces memory as the memory reducer
 * would and empties that pool. It stops the process for 0.3–0.5 s at 5,000 workloads, so it is
 * for when the work is done, or the heap fragmented (releaseWhenFragmented).
 */
export function releaseFreedPages(): void {
  if (collect === undefined) {
    // V8 gives gc() to the contexts made after the flag is set, not to this one.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  }
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

/**
 * Lets V8 collect the young generation while a full collection marks the heap. By default
 * (`--separate-gc-phases`) Node 24's V8 runs no scavenge until the marking is done, and what
 * kopek allocates meanwhile stays in a young generation that grows past its semi-space: 12–59
 * MiB in the 100–200 ms of a marking at 5,000 workloads, on top of the old generation at its
 * limit: what put the peak over 256 MiB (docs/decisions/0025). Set after start, it takes effect.
 * Returns the flag it set.
 */
export function collectYoungDuringMarking(): string {
  return setFlag('--no-separate-gc-phases');
}

/**
 * Lets V8's heap grow at most `percent` past what its last full collection kept before it starts
 * the next (0: V8's own factor, 30% under a 512 MiB limit). The old generation fills up to that
 * limit with what kopek made since, garbage by then for the most part, so the committed heap
 * follows the factor times the live heap, and resident memory with it (docs/decisions/0026). Set
 * after start, it takes effect at the next full collection. Returns the flag it set.
 */
export function limitHeapGrowth(percent: number): string {
  return setFlag(`--heap-growing-percent=${percent}`);
}

/**
 * Sets `kopek run`'s V8 flags after start and returns them, for its log: a process cannot read
 * a V8 flag back.
 */
export function setMemoryFlags(settings: {
  memorySaver: boolean;
  heapGrowingPercent: number;
}): string[] {
  return [
    // NODE_OPTIONS refuses this V8 flag. Set after start, it still takes effect (measured with
    // bench:scale, docs/decisions/0022).
    ...(settings.memorySaver ? [setFlag('--memory-saver-mode')] : []),
    collectYoungDuringMarking(),
    limitHeapGrowth(settings.heapGrowingPercent),
  ];
}

function setFlag(flag: string): string {
  setFlagsFromString(flag);
  return flag;
}

const MiB = 2 ** 20;

/** V8's old generation: objects that lived through young collections, or pretenured. */
export interface OldGeneration {
  /** The pages V8 has committed for it (space_size). */
  committedBytes: number;
  /** What its objects take (space_used_size): the live ones, soon after a full collection. */
  usedBytes: number;
}

/**
 * Whether a full collection left more of the old generation's pages unused than it should: over
 * a fifth of its live objects, and over 16 MiB. Objects replaced one by one leave pages part used;
 * V8 compacts only pages mostly free, and a few MiB of them per collection (docs/decisions/0027).
 */
export function fragmented(old: OldGeneration): boolean {
  const unused = old.committedBytes - old.usedBytes;
  return unused > Math.max(16 * MiB, old.usedBytes / 5);
}

/**
 * Least time between two releases for fragmentation: one stops kopek for two full collections,
 * 0.3–0.5 s at 5,000 workloads, up to 2.1 s when the API server shares two busy cores (0027).
 */
export const FRAGMENTATION_RELEASE_INTERVAL_MS = 30_000;
/** After a release that gave back less than this, the next waits twice as long. */
const LEAST_RETURNED_BYTES = 8 * MiB;
const LONGEST_RELEASE_INTERVAL_MS = 600_000;

export interface FragmentationReleaseOptions {
  log: Logger;
  /** Default: releaseFreedPages: its collection compacts as the memory reducer's does. */
  release?: () => void;
  /** Default: V8's heap space statistics. */
  oldGeneration?: () => OldGeneration;
  /** Milliseconds on a monotonic clock; default performance.now. */
  now?: () => number;
}

/**
 * Releases V8's heap when a full collection left its old generation fragmented (see fragmented),
 * at most every FRAGMENTATION_RELEASE_INTERVAL_MS; less often while releases give back little, as
 * when the unused space is spread over pages too full for V8 to move.
 */
export class FragmentationRelease {
  private readonly options: FragmentationReleaseOptions;
  private lastReleaseAt = -Infinity;
  private intervalMs = FRAGMENTATION_RELEASE_INTERVAL_MS;

  constructor(options: FragmentationReleaseOptions) {
    this.options = options;
  }

  /** Called after each full collection; true when it released. */
  afterFullCollection(): boolean {
    const {
      log,
      release = releaseFreedPages,
      oldGeneration = oldGenerationStatistics,
      now = (): number => performance.now(),
    } = this.options;
    const started = now();
    if (started - this.lastReleaseAt < this.intervalMs) return false;
    const before = oldGeneration();
    if (!fragmented(before)) return false;
    this.lastReleaseAt = started;
    try {
      release();
    } catch (error) {
      log.warn('could not compact the heap', { error: errorMessage(error) });
      return false;
    }
    const after = oldGeneration();
    const returned = before.committedBytes - after.committedBytes;
    this.intervalMs =
      returned < LEAST_RETURNED_BYTES
        ? Math.min(this.intervalMs * 2, LONGEST_RELEASE_INTERVAL_MS)
        : FRAGMENTATION_RELEASE_INTERVAL_MS;
    log.debug('compacted the heap and returned its unused pages to the system', {
      ms: Math.round(now() - started),
      liveMiB: Math.round(after.usedBytes / MiB),
      committedMiBBefore: Math.round(before.committedBytes / MiB),
      committedMiBAfter: Math.round(after.committedBytes / MiB),
    });
    return true;
  }
}

function oldGenerationStatistics(): OldGeneration {
  const old = getHeapSpaceStatistics().find((space) => space.space_name === 'old_space');
  return { committedBytes: old?.space_size ?? 0, usedBytes: old?.space_used_size ?? 0 };
}

function isFullCollection(entry: PerformanceEntry): boolean {
  // Node's gc entries carry their kind in detail, which @types/node leaves off PerformanceEntry.
  const { detail } = entry as PerformanceEntry & { detail?: NodeGCPerformanceDetail };
  return detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

/**
 * Watches V8's full collections (Node's `gc` performance entries, which reach an observer in a
 * later turn of the event loop) and releases the heap when one left it fragmented. Returns a
 * function that stops watching.
 */
export function releaseWhenFragmented(options: FragmentationReleaseOptions): () => void {
  const fragmentation = new FragmentationRelease(options);
  const observer = new PerformanceObserver((entries) => {
    if (entries.getEntries().some(isFullCollection)) fragmentation.afterFullCollection();
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => {
    observer.disconnect();
  };
}
