import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ClusterCache } from '../../operator/cache.ts';
import { fixedPrices } from '../../operator/prices.ts';
import { KubeClient } from '../../operator/kube/client.ts';
import { silentLogger } from '../../operator/log.ts';
import { createMetrics } from '../../operator/metrics.ts';
import { RecommendationController } from '../../operator/recommendations/controller.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { DEFAULT_FLEET } from '../cluster/fleet.ts';
import { ROLLOUT_CRD } from '../support/argo.ts';
import { installCrds, waitForCrds } from '../support/kopek.ts';

const ROLLOUT = {
  apiVersion: 'argoproj.io/v1alpha1',
  kind: 'Rollout',
  metadata: { name: 'checkout', namespace: 'shop' },
  spec: {
    replicas: 4,
    selector: { matchLabels: { app: 'checkout' } },
    strategy: { canary: { steps: [{ setWeight: 20 }] } },
    template: {
      metadata: { labels: { app: 'checkout' } },
      spec: {
        containers: [
          {
            name: 'checkout',
            image: 'ghcr.io/acme/checkout:1',
            resources: { requests: { cpu: '500m', memory: '512Mi' } },
          },
        ],
      },
    },
  },
};

describe('Argo Rollouts installed after kopek started', () => {
  let cluster: LocalCluster;
  let cache: ClusterCache;
  let controller: RecommendationController;
  const running = new AbortController();
  let run: Promise<void>;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    await cluster.addFleet(DEFAULT_FLEET);
    await installCrds(cluster);
    await cluster.kubectl(['create', 'namespace', 'shop']);
    const client = new KubeClient(cluster.connection());
    const metrics = createMetrics();
    cache = new ClusterCache({
      client,
      log: silentLogger,
      metrics,
      discoveryIntervalMs: 500,
      onChange: (resource, object) => {
        controller.onChange(resource, object);
      },
    });
    controller = new RecommendationController({
      client,
      cache,
      log: silentLogger,
      metrics,
      prices: fixedPrices(SNAPSHOT_PRICES),
      minRebuildIntervalMs: 200,
    });
    await cache.start();
    run = controller.run(running.signal);
  });

  afterAll(async () => {
    running.abort();
    await run;
    await controller.stop();
    await cache.stop();
    await cluster.stop();
  });

  it('are watched once their API appears, and get recommendations', async () => {
    await cluster.kubectl(['apply', '-f', '-'], { input: stringify(ROLLOUT_CRD) });
    await waitForCrds(cluster, ['rollouts.argoproj.io']);
    await cluster.kubectl(['apply', '-f', '-'], { input: stringify(ROLLOUT) });
    await expect
      .poll(
        async () =>
          (
            await cluster.kubectl(
              [
                'get',
                'wrec',
                'rollout-checkout',
                '-n',
                'shop',
                '-o',
                'jsonpath={.spec.targetRef.kind}/{.status.spot.verdict}',
              ],
              { allowFailure: true },
            )
          ).stdout,
        { timeout: 30_000 },
      )
      .toMatch(/^Rollout\/\w+$/);
    const owner = (
      await cluster.kubectl([
        'get',
        'wrec',
        'rollout-checkout',
        '-n',
        'shop',
        '-o',
        'jsonpath={.metadata.ownerReferences[0].apiVersion}',
      ])
    ).stdout;
    expect(owner).toBe('argoproj.io/v1alpha1');
  });
});
