import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { WorkloadRecommendationStatus } from '../recommender/api/v1alpha1.ts';
import { expositionChunks } from './exposition.ts';
import { createMetrics, startMetricsServer, type Metrics } from './metrics.ts';
import { WorkloadResults } from './recommendations/results.ts';

/** A status whose series cover every per-workload gauge; `i` varies the money. */
function statusOf(i: number, peerName = `peer-${i}`): WorkloadRecommendationStatus {
  return {
    monthlyCostUSD: `${100 + i}.25`,
    potentialMonthlySavingsUSD: `${i}.5`,
    spot: { verdict: 'Recommended', score: 80, monthlySavingsUSD: `${i}` },
    arm64: { verdict: 'Possible', score: 40, monthlySavingsUSD: '0.10' },
    crossZone: {
      verdict: 'NotRecommended',
      score: 10,
      monthlySavingsUSD: '0',
      monthlyCostUSD: '2.00',
      monthlyCrossZoneGB: `${i / 8}`,
      edges: [
        {
          peer: { namespace: 'shop', kind: 'Deployment', name: peerName },
          monthlyCrossZoneGB: '1.5',
          monthlyCostUSD: '0.03',
        },
      ],
    },
  };
}

/** `count` workloads' results, the first with label values and a value the format escapes. */
function metricsWith(count: number): { metrics: Metrics; results: WorkloadResults } {
  const metrics = createMetrics();
  // Node's and the process's own series change from one rendering to the next.
  for (const { name } of metrics.registry.getMetricsAsArray())
    if (name.startsWith('nodejs_') || name.startsWith('process_'))
      metrics.registry.removeSingleMetric(name);
  const results = new WorkloadResults(metrics);
  for (let i = 0; i < count; i++) {
    const status = i === 0 ? statusOf(i, 'say "hi"\\ \nbye') : statusOf(i);
    if (i === 0) status.monthlyCostUSD = 'not a number';
    results.set(`wl/shop/Deployment/web-${i}`, {
      namespace: 'shop',
      kind: 'Deployment',
      name: `web-${i}`,
      policy: 'everywhere',
      status,
    });
  }
  metrics.nodes.set({ capacity_type: 'spot', arch: 'arm64' }, 3);
  metrics.monthlyCost.set(Number.POSITIVE_INFINITY);
  return { metrics, results };
}

async function allChunks(metrics: Metrics): Promise<string[]> {
  const chunks: string[] = [];
  for await (const chunk of expositionChunks(metrics.registry)) chunks.push(chunk);
  return chunks;
}

describe('the exposition text', () => {
  it("is prom-client's own text, in chunks none of which holds a large gauge whole", async () => {
    const { metrics } = metricsWith(3000);
    const chunks = await allChunks(metrics);
    const text = chunks.join('');
    // prom-client's formatter is the reference: same bytes, escapes and values included.
    expect(text).toBe(await metrics.registry.metrics());
    expect(text).toContain(
      'peer_name="say \\"hi\\"\\\\ \\nbye"} 1610612736\nkopek_workload_cross_zone_edge_bytes_monthly{',
    );
    expect(text).toContain(
      'kopek_workload_monthly_cost_usd{namespace="shop",kind="Deployment",name="web-0"} Nan',
    );
    expect(text).toContain('kopek_monthly_cost_usd +Inf');
    const savingsLines = text
      .split('\n')
      .filter((line) => line.startsWith('kopek_workload_potential'));
    expect(savingsLines).toHaveLength(4 * 3000);
    // ~2 MB of per-workload series, in chunks of about 32 K characters plus a line.
    expect(text.length).toBeGreaterThan(2_000_000);
    expect(Math.max(...chunks.map((chunk) => chunk.length))).toBeLessThan(34 * 1024);
  });

  it('shows every gauge as the scrape began, each workload once, while results change', async () => {
    const { metrics, results } = metricsWith(1000);
    const chunks: string[] = [];
    let changed = false;
    for await (const chunk of expositionChunks(metrics.registry)) {
      chunks.push(chunk);
      if (!changed && chunk.includes('kopek_workload_potential_monthly_savings_usd{')) {
        // A reconcile between two chunks: web-1 set again, web-2 gone, web-1000 new.
        const again = { namespace: 'shop', kind: 'Deployment', policy: 'everywhere' };
        results.delete('wl/shop/Deployment/web-1');
        results.set('wl/shop/Deployment/web-1', { ...again, name: 'web-1', status: statusOf(9) });
        results.delete('wl/shop/Deployment/web-2');
        results.set('wl/shop/Deployment/web-1000', {
          ...again,
          name: 'web-1000',
          status: statusOf(1000),
        });
        changed = true;
      }
    }
    expect(changed).toBe(true);
    const lines = chunks.join('').split('\n');
    const savings = lines.filter((line) => line.startsWith('kopek_workload_potential'));
    expect(new Set(savings.map((line) => line.split(' ')[0])).size).toBe(savings.length);
    // Every gauge shows the results as the scrape began, the ones after it included.
    const cost = lines.filter((line) => line.startsWith('kopek_workload_cross_zone_monthly_cost'));
    expect(cost).toHaveLength(1000);
    expect(cost.some((line) => line.includes('name="web-1000"'))).toBe(false);
    expect(cost.some((line) => line.includes('name="web-2"'))).toBe(true);
  });
});

describe('the metrics server', () => {
  const serve = (metrics: Metrics) =>
    startMetricsServer(
      metrics,
      { ready: () => ({ ok: true, detail: 'caches synced; leading' }) },
      '127.0.0.1',
      0,
      () => undefined,
    );
  const close = async (server: Awaited<ReturnType<typeof serve>>): Promise<void> => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };

  it('answers a scrape with the whole text, as it is made', async () => {
    const { metrics } = metricsWith(3000);
    const server = await serve(metrics);
    try {
      const response = await fetch(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
      );
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe(metrics.registry.contentType);
      expect(response.headers.get('transfer-encoding')).toBe('chunked');
      expect(await response.text()).toBe(await metrics.registry.metrics());
    } finally {
      await close(server);
    }
  });

  it('stops making the text when the scraper goes away', async () => {
    const { metrics } = metricsWith(20_000);
    let finished = false;
    let made = 0;
    const samples = metrics.workloadPotentialSavings.samples;
    metrics.workloadPotentialSavings.samples = function* () {
      try {
        for (const sample of samples()) {
          made++;
          yield sample;
        }
      } finally {
        finished = true;
      }
    };
    const server = await serve(metrics);
    try {
      const scraper = new AbortController();
      const response = await fetch(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
        { signal: scraper.signal },
      );
      const reader = response.body?.getReader();
      await reader?.read();
      scraper.abort();
      // ~10 MB of text, of which the socket took a little: the rest is never made.
      await expect.poll(() => finished, { timeout: 10_000 }).toBe(true);
      expect(made).toBeLessThan(4 * 20_000);
    } finally {
      await close(server);
    }
  });

  it('answers 500 with the error when the text fails before it begins', async () => {
    const { metrics } = metricsWith(10);
    metrics.workloadMonthlyCost.samples = () => {
      throw new Error('results unreadable');
    };
    const server = await serve(metrics);
    try {
      const response = await fetch(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
      );
      expect(response.status).toBe(500);
      expect(await response.text()).toBe('Error: results unreadable');
    } finally {
      await close(server);
    }
  });

  it('cuts the connection when a computed gauge fails after the text has begun', async () => {
    const { metrics } = metricsWith(10);
    metrics.workloadCrossZoneCost.samples = function* () {
      yield { labels: { namespace: 'shop', kind: 'Deployment', name: 'web-0' }, value: 1 };
      throw new Error('results unreadable');
    };
    const server = await serve(metrics);
    try {
      // Headers or not, the scraper must not get a truncated text that looks whole.
      const text = fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`).then(
        (response) => response.text(),
      );
      await expect(text).rejects.toThrow();
    } finally {
      await close(server);
    }
  });
});
