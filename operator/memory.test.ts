import { describe, expect, it } from 'vitest';
import {
  FRAGMENTATION_RELEASE_INTERVAL_MS,
  FragmentationRelease,
  fragmented,
  type OldGeneration,
} from './memory.ts';
import type { LogFields, Logger } from './log.ts';

const MiB = 2 ** 20;
const INTERVAL = FRAGMENTATION_RELEASE_INTERVAL_MS;

describe('fragmented', () => {
  it('counts unused old generation over a fifth of its live objects, and over 16 MiB', () => {
    // The whole heap in 0026's change phase at 5,000 workloads: 130 MB live, 186 committed.
    expect(fragmented({ usedBytes: 130 * MiB, committedBytes: 186 * MiB })).toBe(true);
    expect(fragmented({ usedBytes: 130 * MiB, committedBytes: 155 * MiB })).toBe(false);
    // A small heap: a fifth would be 4 MiB.
    expect(fragmented({ usedBytes: 20 * MiB, committedBytes: 35 * MiB })).toBe(false);
    expect(fragmented({ usedBytes: 20 * MiB, committedBytes: 37 * MiB })).toBe(true);
  });
});

/**
 * An old generation whose statistics the test sets, and a release that gives back what the test
 * says (by default all but 5 MiB of the unused pages).
 */
function setup(old: OldGeneration) {
  let now = 0;
  let returns: number | undefined;
  let failWith: Error | undefined;
  const releases: number[] = [];
  const lines: [string, LogFields | undefined][] = [];
  const record = (msg: string, fields?: LogFields): void => {
    lines.push([msg, fields]);
  };
  const log: Logger = { debug: record, info: record, warn: record, error: record };
  const fragmentation = new FragmentationRelease({
    log,
    oldGeneration: () => ({ ...old }),
    now: () => now,
    release: () => {
      if (failWith) throw failWith;
      releases.push(now);
      old.committedBytes -= returns ?? old.committedBytes - old.usedBytes - 5 * MiB;
    },
  });
  return {
    fragmentation,
    releases,
    lines,
    advance: (ms: number) => (now += ms),
    commit: (bytes: number) => (old.committedBytes = bytes),
    releaseReturns: (bytes: number) => (returns = bytes),
    fail: (error: Error | undefined) => (failWith = error),
  };
}

describe('FragmentationRelease', () => {
  it('releases after a collection that left the heap fragmented, and logs what it gave back', () => {
    const fixture = setup({ usedBytes: 130 * MiB, committedBytes: 150 * MiB });
    expect(fixture.fragmentation.afterFullCollection()).toBe(false);
    fixture.commit(186 * MiB);
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
    expect(fixture.releases).toEqual([0]);
    expect(fixture.lines).toEqual([
      [
        'compacted the heap and returned its unused pages to the system',
        { ms: 0, liveMiB: 130, committedMiBBefore: 186, committedMiBAfter: 135 },
      ],
    ]);
    // The heap is compact now: a collection after the interval releases nothing.
    fixture.advance(INTERVAL);
    expect(fixture.fragmentation.afterFullCollection()).toBe(false);
  });

  it('releases at most once per interval, however fragmented the heap', () => {
    const fixture = setup({ usedBytes: 130 * MiB, committedBytes: 186 * MiB });
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
    fixture.advance(INTERVAL - 1);
    fixture.commit(190 * MiB);
    expect(fixture.fragmentation.afterFullCollection()).toBe(false);
    fixture.advance(1);
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
    expect(fixture.releases).toEqual([0, INTERVAL]);
  });

  it('waits twice as long after each release that gave back little, up to 10 minutes', () => {
    const fixture = setup({ usedBytes: 130 * MiB, committedBytes: 186 * MiB });
    fixture.releaseReturns(2 * MiB);
    const waits: number[] = [];
    let last = 0;
    for (let ms = 0; ms <= 40 * 60_000; ms += 1_000) {
      fixture.advance(1_000);
      fixture.commit(186 * MiB);
      if (fixture.fragmentation.afterFullCollection()) {
        if (fixture.releases.length > 1) waits.push(ms - last);
        last = ms;
      }
    }
    expect(waits.slice(0, 6)).toEqual([2, 4, 8, 16, 20, 20].map((n) => n * INTERVAL));
    // A release that gives back enough brings the interval down again.
    fixture.releaseReturns(40 * MiB);
    fixture.advance(20 * INTERVAL);
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
    fixture.advance(INTERVAL);
    fixture.commit(186 * MiB);
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
  });

  it('logs a release that failed and tries again after the interval', () => {
    const fixture = setup({ usedBytes: 130 * MiB, committedBytes: 186 * MiB });
    fixture.fail(new Error('gc is not a function'));
    expect(fixture.fragmentation.afterFullCollection()).toBe(false);
    expect(fixture.lines).toEqual([
      ['could not compact the heap', { error: 'gc is not a function' }],
    ]);
    fixture.fail(undefined);
    fixture.advance(INTERVAL - 1);
    expect(fixture.fragmentation.afterFullCollection()).toBe(false);
    fixture.advance(1);
    expect(fixture.fragmentation.afterFullCollection()).toBe(true);
  });
});
