import { describe, expect, it } from 'vitest';
import {
  FRAGMENTATION_RELEASE_INTERVAL_MS,
  FragmentationRelease,
  fragmented,
  type HeapAfterCollection,
} from './memory.ts';
import type { LogFields, Logger } from './log.ts';

const MiB = 2 ** 20;

describe('fragmented', () => {
  it('counts unused committed heap over a fifth of the live heap, and over 16 MiB', () => {
    // The change phase at 5,000 workloads: 130 MB live, 186 committed.
    expect(fragmented({ usedBytes: 130 * MiB, committedBytes: 186 * MiB })).toBe(true);
    expect(fragmented({ usedBytes: 130 * MiB, committedBytes: 155 * MiB })).toBe(false);
    // A small heap: a fifth would be 4 MiB, less than the young generation alone.
    expect(fragmented({ usedBytes: 20 * MiB, committedBytes: 35 * MiB })).toBe(false);
    expect(fragmented({ usedBytes: 20 * MiB, committedBytes: 37 * MiB })).toBe(true);
  });
});

/** A heap whose statistics the test sets, and a release that compacts it. */
function setup(heap: HeapAfterCollection) {
  let now = 0;
  const releases: number[] = [];
  const lines: [string, LogFields | undefined][] = [];
  const record = (msg: string, fields?: LogFields): void => {
    lines.push([msg, fields]);
  };
  const log: Logger = { debug: record, info: record, warn: record, error: record };
  let failWith: Error | undefined;
  const release = new FragmentationRelease({
    log,
    heap: () => ({ ...heap }),
    now: () => now,
    release: () => {
      if (failWith) throw failWith;
      releases.push(now);
      heap.committedBytes = heap.usedBytes + 5 * MiB;
    },
  });
  return {
    release,
    releases,
    lines,
    advance: (ms: number) => (now += ms),
    fragment: (committedBytes: number) => (heap.committedBytes = committedBytes),
    fail: (error: Error | undefined) => (failWith = error),
  };
}

describe('FragmentationRelease', () => {
  it('releases after a collection that left the heap fragmented, and logs what it gave back', () => {
    const heap = setup({ usedBytes: 130 * MiB, committedBytes: 150 * MiB });
    expect(heap.release.afterFullCollection()).toBe(false);
    heap.fragment(186 * MiB);
    expect(heap.release.afterFullCollection()).toBe(true);
    expect(heap.releases).toEqual([0]);
    expect(heap.lines).toEqual([
      [
        'compacted the heap and returned its unused pages to the system',
        { ms: 0, liveMiB: 130, committedMiBBefore: 186, committedMiBAfter: 135 },
      ],
    ]);
    // Compact now: the next collection releases nothing.
    expect(heap.release.afterFullCollection()).toBe(false);
  });

  it('releases at most once per interval, however fragmented the heap', () => {
    const heap = setup({ usedBytes: 130 * MiB, committedBytes: 186 * MiB });
    expect(heap.release.afterFullCollection()).toBe(true);
    heap.advance(FRAGMENTATION_RELEASE_INTERVAL_MS - 1);
    heap.fragment(190 * MiB);
    expect(heap.release.afterFullCollection()).toBe(false);
    heap.advance(1);
    expect(heap.release.afterFullCollection()).toBe(true);
    expect(heap.releases).toEqual([0, FRAGMENTATION_RELEASE_INTERVAL_MS]);
  });

  it('logs a release that failed and tries again after the interval', () => {
    const heap = setup({ usedBytes: 130 * MiB, committedBytes: 186 * MiB });
    heap.fail(new Error('gc is not a function'));
    expect(heap.release.afterFullCollection()).toBe(false);
    expect(heap.lines).toEqual([['could not compact the heap', { error: 'gc is not a function' }]]);
    heap.fail(undefined);
    heap.advance(FRAGMENTATION_RELEASE_INTERVAL_MS);
    expect(heap.release.afterFullCollection()).toBe(true);
  });
});
