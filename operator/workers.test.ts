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
});
