import { afterEach, describe, expect, it } from 'vitest';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { createMetrics } from '../metrics.ts';
import { memoryLog } from '../testing/harness.ts';
import { LivePrices } from './live-prices.ts';
import type { AwsClients } from './sdk.ts';

/** A promise and the functions that settle it. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const started: LivePrices[] = [];
afterEach(async () => {
  for (const prices of started.splice(0)) await prices.stop();
});

describe('live prices: pending work', () => {
  it('reports a refresh from start until the first fetch is over, then none', async () => {
    const metrics = createMetrics();
    const caches = deferred<undefined>();
    const clients = deferred<AwsClients>();
    const prices = new LivePrices({
      base: SNAPSHOT_PRICES,
      region: 'us-east-1',
      nodeLabels: () => [],
      refreshIntervalMs: 3_600_000,
      log: memoryLog(),
      metrics,
      clients: () => clients.promise,
    });
    const refresh = async (): Promise<number | undefined> => {
      prices.updateMetrics();
      const gauge = await metrics.pendingWork.get();
      return gauge.values.find(
        (v) => v.labels.controller === 'prices' && v.labels.kind === 'refresh',
      )?.value;
    };
    expect(prices.pending()).toEqual({ refresh: 0 });

    prices.start(caches.promise);
    started.push(prices);
    // Due: waiting for the caches.
    expect(await refresh()).toBe(1);
    caches.resolve(undefined);
    await new Promise((resolve) => setImmediate(resolve));
    // Running: waiting for AWS.
    expect(await refresh()).toBe(1);
    clients.reject(
      Object.assign(new Error('Could not load credentials'), { name: 'CredentialsProviderError' }),
    );
    await prices.refresh();
    expect(await refresh()).toBe(0);
  });
});
