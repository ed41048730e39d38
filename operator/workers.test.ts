import { describe, expect, it } from 'vitest';
import { silentLogger } from './log.ts';
import { createMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import { runWorkers } from './workers.ts';

describe('runWorkers', () => {
  it('returns at once, reconciling nothing, when its signal aborted before it started', async () => {
    const queue = new WorkQueue({ name: 'test' });
    queue.add('a');
    const stop = new AbortController();
    stop.abort();
    const reconciled: string[] = [];
    await runWorkers({
      controller: 'test',
      queue,
      count: 2,
      reconcile: (key) => {
        reconciled.push(key);
        return Promise.resolve();
      },
      metrics: createMetrics(),
      log: silentLogger,
      signal: stop.signal,
    });
    expect(reconciled).toEqual([]);
  });

  it('tells when it is done with every key, not while a key waits or is reconciled', async () => {
    const queue = new WorkQueue({ name: 'test' });
    const stop = new AbortController();
    const events: string[] = [];
    let finishA = (): void => undefined;
    const aDone = new Promise<void>((resolve) => {
      finishA = resolve;
    });
    queue.add('a');
    queue.add('b');
    queue.add('c');
    const running = runWorkers({
      controller: 'test',
      queue,
      count: 2,
      reconcile: async (key) => {
        events.push(key);
        if (key === 'a') await aDone;
        // b is the last key queued: a is reconciled still when c is done.
        if (key === 'c') finishA();
      },
      metrics: createMetrics(),
      log: silentLogger,
      signal: stop.signal,
      onIdle: () => {
        events.push('idle');
        if (events.length === 4) queue.add('d');
        else stop.abort();
      },
    });
    await running;
    expect(events).toEqual(['a', 'b', 'c', 'idle', 'd', 'idle']);
  });
});
