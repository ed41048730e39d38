import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startHeapRelease } from './heap-release.ts';
import { ManualClock } from './testing/manual-clock.ts';

const MiB = 2 ** 20;

/** A heap that shrinks to `after` when collected, and the calls made to gc(). */
function fakeHeap(start: number) {
  const state = { committed: start, busy: 0, gcCalls: [] as unknown[], collectsTo: start };
  const gc = ((options?: unknown) => {
    state.gcCalls.push(options);
    state.committed = state.collectsTo;
  }) as NodeJS.GCFunction;
  return { state, gc };
}

describe('startHeapRelease', () => {
  it('is off without gc()', () => {
    const timer = startHeapRelease({
      gc: undefined,
      clock: new ManualClock(),
      heapCommitted: () => 0,
      busy: () => 0,
      released: () => undefined,
    });
    expect(timer).toBeUndefined();
  });

  it('releases once the heap has shrunk far below its peak and the loop is quiet, then tracks a new peak', async () => {
    const clock = new ManualClock();
    const { state, gc } = fakeHeap(60 * MiB);
    const released: { heapBefore: number; heapAfter: number }[] = [];
    const timer = startHeapRelease({
      gc,
      clock,
      heapCommitted: () => state.committed,
      busy: () => state.busy,
      released: (r) => released.push(r),
    });
    // The cold start: the heap grows to 200 MiB with the loop busy.
    state.committed = 200 * MiB;
    state.busy = 0.9;
    await clock.advance(10_000);
    // V8 collects down to 70 MiB while still busy: wait.
    state.committed = 70 * MiB;
    await clock.advance(10_000);
    expect(state.gcCalls).toEqual([]);
    // Quiet: a memory-reducing GC.
    state.busy = 0.1;
    state.collectsTo = 66 * MiB;
    await clock.advance(10_000);
    expect(state.gcCalls).toEqual([{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
    expect(released).toMatchObject([{ heapBefore: 70 * MiB, heapAfter: 66 * MiB }]);
    // No new shrink: nothing more, however quiet.
    await clock.advance(60_000);
    expect(state.gcCalls).toHaveLength(1);
    // A shrink smaller than 32 MiB below the new peak is not worth a full GC.
    state.committed = 90 * MiB;
    await clock.advance(10_000);
    state.committed = 70 * MiB;
    await clock.advance(10_000);
    expect(state.gcCalls).toHaveLength(1);
    state.committed = 57 * MiB;
    await clock.advance(10_000);
    expect(state.gcCalls).toHaveLength(2);
    timer?.cancel();
  });

  // The mechanism itself, in a real Node: a regular GC leaves the freed pages resident, the
  // release gives them back.
  it('gives a real Node its freed heap pages back', () => {
    const script = `
      import { startHeapRelease } from ${JSON.stringify(new URL('./heap-release.ts', import.meta.url).href)};
      import { getHeapStatistics } from 'node:v8';
      const rss = () => process.memoryUsage().rss;
      let kept = [];
      for (let r = 0; r < 40; r++)
        kept.push(JSON.parse(JSON.stringify(Array.from({ length: 5000 }, (_, i) => ({ metadata: { name: 'pod-' + i + '-' + r, labels: { app: 'a' + i } }, spec: { containers: [{ image: 'x' + i }] } })))));
      kept = [];
      gc(); gc();
      const afterRegularGc = rss();
      const timer = startHeapRelease({
        gc,
        clock: { now: Date.now, setTimeout, setInterval: (f, ms) => { const h = setInterval(f, ms); return { cancel: () => clearInterval(h) }; } },
        heapCommitted: () => getHeapStatistics().total_heap_size,
        busy: () => 0,
        released: () => { timer.cancel(); console.log(JSON.stringify({ afterRegularGc, afterRelease: rss() })); },
        intervalMs: 10,
        minShrinkBytes: 0,
      });`;
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', '--max-semi-space-size=2', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    const { afterRegularGc, afterRelease } = JSON.parse(out) as Record<string, number>;
    expect((afterRegularGc ?? 0) - (afterRelease ?? 0)).toBeGreaterThan(20 * MiB);
  });
});
