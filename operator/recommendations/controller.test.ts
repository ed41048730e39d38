import { afterEach, describe, expect, it } from 'vitest';
import { RESOURCES } from '../kube/resources.ts';
import { apiError, FakeKube } from '../testing/fake-kube.ts';
import {
  deployment,
  recommendationOf,
  startFakeOperator,
  type FakeOperator,
} from '../testing/harness.ts';

interface StoredRecommendation {
  metadata: { resourceVersion: string };
  status?: {
    spot?: { verdict: string };
    conditions?: { type: string; lastTransitionTime: string; message: string }[];
  };
}

let operator: FakeOperator | undefined;
afterEach(async () => {
  await operator?.stop();
  operator = undefined;
});

/** Starts the fake operator with one Deployment shop/web and waits for its recommendation. */
async function withWeb(replicas = 3): Promise<FakeOperator> {
  operator = await startFakeOperator();
  operator.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas }));
  const { kube } = operator;
  await operator.until(() => recommendationOf(kube, 'shop', 'web')?.status !== undefined);
  return operator;
}

async function reconcileErrors(op: FakeOperator): Promise<number> {
  const errors = await op.metrics.reconcileErrors.get();
  return errors.values.reduce((sum, value) => sum + value.value, 0);
}

function stored(op: FakeOperator): StoredRecommendation | undefined {
  return recommendationOf(op.kube, 'shop', 'web') as StoredRecommendation | undefined;
}

describe('the recommendation controller', () => {
  it('deletes the recommendation itself when the workload becomes ignored (no garbage collector here)', async () => {
    const op = await withWeb();
    op.kube.put(
      RESOURCES.deployments,
      deployment('shop', 'web', { annotations: { 'kopek.dev/ignore': 'true' } }),
    );
    await op.until(() => stored(op) === undefined);
    expect(op.kube.count('delete', 'workloadrecommendations')).toBe(1);
  });

  it('counts each rebuild by scope: all workloads at first, then only those a change marked', async () => {
    const op = await withWeb();
    op.kube.put(RESOURCES.deployments, deployment('shop', 'api'));
    await op.until(() => recommendationOf(op.kube, 'shop', 'api')?.status !== undefined);
    const byScope = (values: { labels: { scope?: string | number }; value: number }[]) =>
      Object.fromEntries(values.map((v) => [String(v.labels.scope), v.value]));
    // The first rebuild computed web (all there was); the new Deployment's only itself.
    const built = await op.metrics.factsRebuildWorkloads.get();
    expect(byScope(built.values)).toEqual({ all: 1, marked: 1 });
    const durations = await op.metrics.factsRebuildDuration.get();
    const counts = durations.values.filter((v) => v.metricName?.endsWith('_count'));
    expect(byScope(counts)).toEqual({ all: 1, marked: 1 });
  });

  it('deletes the recommendation itself when the workload is deleted', async () => {
    const op = await withWeb();
    op.kube.remove(RESOURCES.deployments, 'web', 'shop');
    await op.until(() => stored(op) === undefined);
    expect(op.kube.count('delete', 'workloadrecommendations')).toBe(1);
  });

  it('never deletes a recommendation that kopek did not make', async () => {
    const op = await withWeb();
    op.kube.put(RESOURCES.workloadrecommendations, {
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'WorkloadRecommendation',
      metadata: { name: 'deployment-handmade', namespace: 'shop' },
      spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'handmade' } },
    });
    await op.clock.advance(5_000);
    expect(
      op.kube.object(RESOURCES.workloadrecommendations, 'deployment-handmade', 'shop'),
    ).toBeDefined();
    expect(op.kube.count('delete')).toBe(0);
  });

  it('marks no changes while standing by, and recommends for every workload once it leads', async () => {
    operator = await startFakeOperator({ standby: true });
    const op = operator;
    const names = Array.from({ length: 40 }, (_, i) => `web-${i}`);
    for (const name of names) op.kube.put(RESOURCES.deployments, deployment('shop', name));
    await op.clock.advance(5_000);
    expect([...op.cache.list('deployments')]).toHaveLength(names.length);
    // Only "rebuild all" waits: taking the lease reads the caches whole, so a standby that
    // marked each name it saw would only pile them up.
    expect(op.controller.pending().changes).toBe(1);
    expect(op.kube.count('apply')).toBe(0);
    op.lead();
    await op.until(() =>
      names.every((name) => recommendationOf(op.kube, 'shop', name)?.status !== undefined),
    );
  });

  it('reports its pending work, a retry backing off included, until the recommendation is final', async () => {
    operator = await startFakeOperator();
    const op = operator;
    // Six failures: the backoff (5 ms doubling) outlasts a step of the clock.
    op.kube.failNext(
      { verb: 'apply', resource: 'workloadrecommendations' },
      apiError(500, 'InternalError', 'etcd is down'),
      6,
    );
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web'));
    const seen = new Set<string>();
    const idle = (): boolean => {
      const pending = op.controller.pending();
      for (const [kind, value] of Object.entries(pending)) if (value > 0) seen.add(kind);
      return Object.values(pending).every((value) => value === 0);
    };
    await op.until(idle);
    expect(stored(op)?.status).toBeDefined();
    expect(op.kube.count('apply', 'workloadrecommendations')).toBe(7);
    // The fake API answers at once, so a key is seldom seen queued between two steps.
    expect(seen).toContain('changes');
    expect(seen).toContain('rebuilding');
    expect(seen).toContain('retrying');
    // Nothing pending means nothing more happens until the world changes.
    await op.clock.advance(120_000);
    expect(op.kube.count('apply', 'workloadrecommendations')).toBe(7);
    expect(idle()).toBe(true);
    op.controller.updateMetrics();
    const gauge = await op.metrics.pendingWork.get();
    expect(gauge.values.map((v) => [v.labels.kind, v.value])).toContainEqual(['retrying', 0]);
  });

  it('retries a write refused with 409 Conflict and then writes it', async () => {
    operator = await startFakeOperator();
    const op = operator;
    op.kube.failNext(
      { verb: 'apply', resource: 'workloadrecommendations' },
      apiError(409, 'Conflict', 'the object has been modified'),
    );
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web'));
    await op.until(() => stored(op)?.status !== undefined);
    expect(op.kube.count('apply', 'workloadrecommendations')).toBe(2);
    const errors = await op.metrics.reconcileErrors.get();
    expect(errors.values[0]?.value).toBe(1);
    const byReason = await op.metrics.reconcileErrorsByReason.get();
    expect(byReason.values.map((v) => [v.labels.reason, v.value])).toEqual([['409 Conflict', 1]]);
    // A conflict is expected under concurrency: logged at debug, not as a warning.
    expect(op.log.lines.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('recreates nothing for a workload the garbage collector is deleting, and counts no error', async () => {
    const op = await withWeb();
    const applies = op.kube.count('apply', 'workloadrecommendations');
    // The garbage collector deletes the recommendation with its Deployment, before kopek's
    // facts rebuild learns the Deployment is gone.
    op.kube.remove(RESOURCES.deployments, 'web', 'shop');
    op.kube.remove(RESOURCES.workloadrecommendations, 'deployment-web', 'shop');
    await op.clock.advance(5_000);
    expect(stored(op)).toBeUndefined();
    expect(op.kube.count('apply', 'workloadrecommendations')).toBe(applies);
    expect(op.kube.count('delete', 'workloadrecommendations')).toBe(0);
    expect(await reconcileErrors(op)).toBe(0);
  });

  it('writes nothing for a workload being deleted (deletionTimestamp set)', async () => {
    const op = await withWeb();
    const writes = (): number => op.kube.count('apply') + op.kube.count('apply-status');
    const before = writes();
    const terminating = deployment('shop', 'web', { replicas: 1 });
    (terminating.metadata as Record<string, unknown>).deletionTimestamp = '2026-01-01T00:00:00Z';
    op.kube.put(RESOURCES.deployments, terminating);
    await op.clock.advance(5_000);
    expect(writes()).toBe(before);
    expect(await reconcileErrors(op)).toBe(0);
  });

  it('takes a status write answered 404 (the recommendation deleted meanwhile) as no error, and writes it again', async () => {
    const op = await withWeb();
    op.kube.failNext(
      { verb: 'apply-status', resource: 'workloadrecommendations' },
      apiError(404, 'NotFound', 'workloadrecommendations.kopek.dev "deployment-web" not found'),
    );
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 1 }));
    await op.until(() => op.kube.count('apply-status', 'workloadrecommendations') === 2);
    // The deletion the 404 reported reaches kopek's cache, and queues the workload again.
    op.kube.remove(RESOURCES.workloadrecommendations, 'deployment-web', 'shop');
    await op.until(() => stored(op)?.status?.spot?.verdict === 'NotRecommended');
    expect(await reconcileErrors(op)).toBe(0);
  });

  it('counts a request that timed out as a timeout, and retries it', async () => {
    operator = await startFakeOperator();
    const op = operator;
    op.kube.failNext({ verb: 'apply', resource: 'workloadrecommendations' }, 'timeout');
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web'));
    await op.until(() => stored(op)?.status !== undefined);
    const byReason = await op.metrics.reconcileErrorsByReason.get();
    expect(byReason.values.map((v) => [v.labels.reason, v.value])).toEqual([['timeout', 1]]);
  });

  it('writes nothing more once the recommendation matches the world', async () => {
    const op = await withWeb();
    const writes = (): number =>
      op.kube.count('apply') + op.kube.count('apply-status') + op.kube.count('delete');
    const before = writes();
    expect(before).toBeGreaterThan(0);
    // Resyncs every 10 minutes recompute everything; nothing has changed, so nothing is written.
    await op.clock.advance(30 * 60_000);
    expect(writes()).toBe(before);
  });

  it("returns V8's freed heap pages when a full rebuild's work is done, at most every ten minutes", async () => {
    const op = await withWeb();
    await op.until(() => op.memoryReleases === 1);
    // A change rebuilds what it marks only: its work does not release again.
    op.kube.put(RESOURCES.deployments, deployment('shop', 'api'));
    await op.until(() => recommendationOf(op.kube, 'shop', 'api')?.status !== undefined);
    await op.clock.advance(5_000);
    expect(op.memoryReleases).toBe(1);
    // A full rebuild within ten minutes of the last release: its work done, still not released.
    op.controller.requestFullRebuild();
    await op.clock.advance(5_000);
    op.kube.put(RESOURCES.deployments, deployment('shop', 'api', { replicas: 5 }));
    await op.until(() => op.kube.count('apply-status') >= 3);
    await op.clock.advance(5_000);
    expect(op.memoryReleases).toBe(1);
    // The resync rebuilds all every ten minutes: the first at least ten minutes after the last
    // release releases, though it changed nothing and so left the workers no work to finish.
    await op.until(() => op.memoryReleases === 2, 21 * 60_000);
  });

  it("keeps the Ready condition's lastTransitionTime while its status holds, and updates the rest", async () => {
    const op = await withWeb(1);
    const first = stored(op);
    const ready = first?.status?.conditions?.find((c) => c.type === 'Ready');
    expect(first?.status?.spot?.verdict).toBe('NotRecommended');
    await op.clock.advance(3_600_000);
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 3 }));
    await op.until(() => stored(op)?.status?.spot?.verdict !== 'NotRecommended');
    const after = stored(op)?.status?.conditions?.find((c) => c.type === 'Ready');
    expect(after?.message).not.toBe(ready?.message);
    expect(after?.lastTransitionTime).toBe(ready?.lastTransitionTime);
  });

  it("removes a workload's metric series when the workload goes", async () => {
    const op = await withWeb();
    const series = async (): Promise<string> =>
      (await op.metrics.registry.getSingleMetricAsString('kopek_workload_monthly_cost_usd')) +
      (await op.metrics.registry.getSingleMetricAsString(
        'kopek_workload_potential_monthly_savings_usd',
      ));
    expect(await series()).toContain('name="web"');
    op.kube.remove(RESOURCES.deployments, 'web', 'shop');
    await op.until(() => stored(op) === undefined);
    expect(await series()).not.toContain('name="web"');
  });

  it('updates the SavingsPolicy status totals as workloads come and go', async () => {
    operator = await startFakeOperator();
    const op = operator;
    op.kube.put(RESOURCES.savingspolicies, {
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'SavingsPolicy',
      metadata: { name: 'all' },
      spec: {},
    });
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web'));
    op.kube.put(RESOURCES.deployments, deployment('shop', 'api'));
    const matched = (): unknown =>
      (
        op.kube.object(RESOURCES.savingspolicies, 'all')?.status as
          { matchedWorkloads?: number } | undefined
      )?.matchedWorkloads;
    await op.until(() => matched() === 2);
    op.kube.remove(RESOURCES.deployments, 'api', 'shop');
    await op.until(() => matched() === 1);
  });

  it("writes a policy's status once at a cold start: after its workloads, with all of them", async () => {
    const kube = new FakeKube();
    kube.put(RESOURCES.savingspolicies, {
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'SavingsPolicy',
      metadata: { name: 'all' },
      spec: {},
    });
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const name of names) kube.put(RESOURCES.deployments, deployment('shop', name));
    const matchedWritten: unknown[] = [];
    const apply = kube.apply.bind(kube);
    kube.apply = (type, object, options) => {
      if (type.plural === 'savingspolicies')
        matchedWritten.push(
          (object as { status?: { matchedWorkloads?: number } }).status?.matchedWorkloads,
        );
      return apply(type, object, options);
    };
    operator = await startFakeOperator({ kube });
    await operator.until(() => matchedWritten.length > 0);
    await operator.until(() =>
      Object.values(operator?.controller.pending() ?? {}).every((n) => n === 0),
    );
    expect(matchedWritten).toEqual([names.length]);
  });

  it('writes nothing from caches still listing: the first status already counts every pod', async () => {
    const kube = new FakeKube();
    kube.put(RESOURCES.nodes, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'us-east-1a' } },
    });
    const web = kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 2 })) as {
      metadata: { uid: string };
    };
    const owner = (kind: string, name: string, uid: string) => [
      { apiVersion: 'apps/v1', kind, name, uid, controller: true },
    ];
    const rs = kube.put(RESOURCES.replicasets, {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: 'web-1',
        namespace: 'shop',
        ownerReferences: owner('Deployment', 'web', web.metadata.uid),
      },
    }) as { metadata: { uid: string } };
    for (const name of ['web-1-a', 'web-1-b'])
      kube.put(RESOURCES.pods, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: 'shop',
          labels: { app: 'web' },
          ownerReferences: owner('ReplicaSet', 'web-1', rs.metadata.uid),
        },
        spec: { nodeName: 'n1', containers: [{ name: 'web' }] },
        status: { phase: 'Running' },
      });
    // The pods' LIST fails once: every other cache has synced while they wait to list again.
    kube.failNext({ verb: 'list', resource: 'pods' }, apiError(500, 'InternalError'));
    const replicasWritten: unknown[] = [];
    const apply = kube.apply.bind(kube);
    kube.apply = (type, object, options) => {
      if (options.subresource === 'status')
        replicasWritten.push(
          (object as { status?: { placement?: { replicas?: number } } }).status?.placement
            ?.replicas,
        );
      return apply(type, object, options);
    };
    operator = await startFakeOperator({ kube });
    await operator.until(() => replicasWritten.length > 0);
    await operator.until(() =>
      Object.values(operator?.controller.pending() ?? {}).every((n) => n === 0),
    );
    expect(replicasWritten).toEqual([2]);
    // One rebuild, of everything, once the caches were complete.
    const built = await operator.metrics.factsRebuildWorkloads.get();
    expect(built.values.map((v) => [v.labels.scope, v.value])).toEqual([['all', 1]]);
  });

  it('keeps a recommendation a person changes while a new leader has no facts yet', async () => {
    const first = await withWeb();
    await first.stop();
    operator = await startFakeOperator({ kube: first.kube });
    const { kube } = operator;
    // Approved right after the new leader started, before its first facts rebuild.
    const wrec = recommendationOf(kube, 'shop', 'web') ?? {};
    kube.put(RESOURCES.workloadrecommendations, {
      ...wrec,
      spec: { ...(wrec.spec as object), approve: ['Spot'] },
    });
    await operator.clock.advance(5_000);
    expect(kube.count('delete', 'workloadrecommendations')).toBe(0);
    expect((recommendationOf(kube, 'shop', 'web')?.spec as { approve?: string[] }).approve).toEqual(
      ['Spot'],
    );
  });
});

describe('kopek_change_to_write_delay_seconds', () => {
  /** Observations so far by outcome: how many and their sum in seconds. */
  async function delays(op: FakeOperator): Promise<Record<string, { count: number; sum: number }>> {
    const out: Record<string, { count: number; sum: number }> = {};
    for (const value of (await op.metrics.changeToWriteDelay.get()).values) {
      const outcome = String(value.labels.outcome);
      const entry = (out[outcome] ??= { count: 0, sum: 0 });
      if (value.metricName?.endsWith('_count')) entry.count = value.value;
      if (value.metricName?.endsWith('_sum')) entry.sum = value.value;
    }
    return out;
  }

  it('measures from the watch event that changed a workload to the start of its status write', async () => {
    const op = await withWeb();
    const before = (await delays(op)).write ?? { count: 0, sum: 0 };
    // When the status write starts, in the fake clock's time.
    let writeStartedAt: number | undefined;
    const apply = op.kube.apply.bind(op.kube);
    op.kube.apply = (type, object, options) => {
      if (options.subresource === 'status') writeStartedAt ??= op.clock.now();
      return apply(type, object, options);
    };
    await op.clock.advance(400);
    const changedAt = op.clock.now();
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 5 }));
    await op.until(() => writeStartedAt !== undefined);
    const after = (await delays(op)).write ?? { count: 0, sum: 0 };
    expect(after.count - before.count).toBe(1);
    const delay = ((writeStartedAt ?? 0) - changedAt) / 1000;
    // The rebuild waits for more events (debounce) first: measured from the rebuild or the
    // queue, the delay would be shorter than this.
    expect(delay).toBeGreaterThanOrEqual(0.1);
    expect(after.sum - before.sum).toBeCloseTo(delay, 6);
  });

  it('measures to "no write needed" when the changed facts give the same recommendation', async () => {
    const op = await withWeb();
    const writes = op.kube.count('apply-status');
    const before = (await delays(op)).none?.count ?? 0;
    // A label on the pod template: kept in the facts (Services select by it), not shown.
    const changed = deployment('shop', 'web');
    const template = (
      changed.spec as { template: { metadata: { labels: Record<string, string> } } }
    ).template;
    template.metadata.labels.tier = 'frontend';
    op.kube.put(RESOURCES.deployments, changed);
    await op.until(
      () => op.controller.pending().queued === 0 && op.controller.pending().changes === 0,
    );
    await op.clock.advance(2_000);
    expect(op.kube.count('apply-status')).toBe(writes);
    expect((await delays(op)).none?.count ?? 0).toBe(before + 1);
  });

  it('writes the workload someone edited before those only an HPA change touched', async () => {
    operator = await startFakeOperator();
    const op = operator;
    const others = ['d1', 'd2', 'd3', 'd4'];
    for (const name of [...others, 'web'])
      op.kube.put(RESOURCES.deployments, deployment('shop', name));
    await op.until(() =>
      [...others, 'web'].every((name) => recommendationOf(op.kube, 'shop', name)?.status),
    );
    const order: string[] = [];
    const apply = op.kube.apply.bind(op.kube);
    op.kube.apply = (type, object, options) => {
      if (options.subresource === 'status') order.push(object.metadata.name);
      return apply(type, object, options);
    };
    // In one batch: an HPA for each of the others (their costs move), then web is scaled.
    for (const name of others)
      op.kube.put(RESOURCES.horizontalpodautoscalers, {
        apiVersion: 'autoscaling/v2',
        kind: 'HorizontalPodAutoscaler',
        metadata: { name, namespace: 'shop' },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
          minReplicas: 2,
          maxReplicas: 10,
        },
      });
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 5 }));
    await op.until(() => order.length === 5);
    // Two idle workers take the first two at once; web goes before the rest of the queue.
    expect(order.indexOf('deployment-web')).toBeLessThan(3);
  });
});
