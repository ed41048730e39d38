import { afterEach, describe, expect, it } from 'vitest';
import { deployment, pod } from '../../recommender/objects/testing.ts';
import { ClusterCache } from '../cache.ts';
import type { KubeObject } from '../kube/client.ts';
import { RESOURCES } from '../kube/resources.ts';
import { createLogger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import { FakeKube } from '../testing/fake-kube.ts';
import { ManualClock } from '../testing/manual-clock.ts';
import { ChangeTracker } from './dirty.ts';

let cache: ClusterCache | undefined;
afterEach(async () => {
  await cache?.stop();
  cache = undefined;
});

/** A cache of `kube` that tells a ChangeTracker each change, started and synced. */
async function startTracked(
  kube: FakeKube,
): Promise<{ tracker: ChangeTracker; started: ClusterCache }> {
  const tracker = new ChangeTracker();
  const started: ClusterCache = new ClusterCache({
    client: kube,
    log: createLogger('error', () => undefined),
    metrics: createMetrics(),
    clock: new ManualClock(),
    onChange: (resource, object, previous) => {
      tracker.markChanged(started, resource, object, previous);
    },
  });
  cache = started;
  await started.start();
  await started.waitForSync();
  return { tracker, started };
}

describe('ChangeTracker', () => {
  it('lists the changed objects only when the next build is not a full one', async () => {
    const kube = new FakeKube();
    const owner = { kind: 'ReplicaSet', name: 'web-5d8f' };
    for (const name of ['a', 'b', 'c'])
      kube.put(RESOURCES.pods, pod(`web-5d8f-${name}`, 'shop', 'n-a', owner, { app: 'web' }));
    const { tracker, started } = await startTracked(kube);
    // The first build indexes every cached object: a list of them all would only wait for it.
    const first = tracker.take();
    expect(first.all).toBe(true);
    expect(first.objects.size).toBe(0);

    kube.put(RESOURCES.pods, pod('web-5d8f-d', 'shop', 'n-a', owner, { app: 'web' }));
    await expect.poll(() => started.get('pods', 'shop/web-5d8f-d')).toBeDefined();
    const next = tracker.take();
    expect(next.all).toBe(false);
    expect([...next.objects.keys()]).toEqual(['pods/shop/web-5d8f-d']);
  });

  it('lets an update that changes nothing the facts read go, whatever the order of its keys', async () => {
    const kube = new FakeKube();
    const owner = { kind: 'ReplicaSet', name: 'web-5d8f' };
    kube.put(
      RESOURCES.pods,
      pod('web-5d8f-a', 'shop', 'n-a', owner, { app: 'web', tier: 'front' }),
    );
    const { tracker, started } = await startTracked(kube);
    tracker.take();
    const cached = started.get('pods', 'shop/web-5d8f-a');
    if (!cached) throw new Error('the pod is not cached');
    const { labels, resourceVersion: _, ...metadata } = cached.metadata;
    const reordered = {
      ...cached,
      metadata: {
        resourceVersion: '999',
        labels: Object.fromEntries(Object.entries(labels ?? {}).reverse()),
        ...metadata,
      },
    };
    expect(tracker.markChanged(started, 'pods', reordered, cached)).toBe(false);
    const relabelled = {
      ...reordered,
      metadata: { ...reordered.metadata, labels: { app: 'api' } },
    };
    expect(tracker.markChanged(started, 'pods', relabelled, cached)).toBe(true);
  });

  it("tells a workload someone edited from one whose rollout's status moved", async () => {
    const kube = new FakeKube();
    const { tracker, started } = await startTracked(kube);
    tracker.take();
    const key = 'wl/shop/Deployment/web';
    const web = deployment('web') as unknown as KubeObject;
    const put = async (object: KubeObject): Promise<Set<string>> => {
      const stored = kube.put(RESOURCES.deployments, object) as unknown as KubeObject;
      await expect
        .poll(() => started.get('deployments', 'shop/web')?.metadata.resourceVersion)
        .toBe(stored.metadata.resourceVersion);
      const taken = tracker.take();
      expect(taken.workloads).toEqual(new Set([key]));
      return taken.edited;
    };
    expect(await put(web)).toEqual(new Set([key])); // created
    // The Deployment controller's status of a rollout: not an edit.
    expect(await put({ ...web, status: { replicas: 3, readyReplicas: 2 } })).toEqual(new Set());
    const scaled = { ...web, spec: { ...(web.spec as object), replicas: 4 } };
    expect(await put(scaled)).toEqual(new Set([key])); // a new generation
    const annotated = {
      ...scaled,
      metadata: { ...scaled.metadata, annotations: { 'kopek.dev/spot': 'never' } },
    };
    expect(await put(annotated)).toEqual(new Set([key]));

    kube.remove(RESOURCES.deployments, 'web', 'shop');
    await expect.poll(() => started.get('deployments', 'shop/web')).toBeUndefined();
    expect(tracker.take().edited).toEqual(new Set([key]));
  });
});
