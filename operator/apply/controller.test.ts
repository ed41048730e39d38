import { afterEach, describe, expect, it } from 'vitest';
import type {
  AppliedChange,
  WorkloadRecommendationStatus,
} from '../../recommender/api/v1alpha1.ts';
import type { ImagePlatformSource } from '../images.ts';
import { RESOURCES } from '../kube/resources.ts';
import type { ApplyPendingWork } from './controller.ts';
import { EVENTS } from './events.ts';
import { apiError, FakeKube } from '../testing/fake-kube.ts';
import {
  deployment,
  recommendationOf,
  startFakeOperator,
  type FakeOperator,
} from '../testing/harness.ts';
import { ManualClock } from '../testing/manual-clock.ts';

type Obj = Record<string, unknown>;

const operators: FakeOperator[] = [];
afterEach(async () => {
  for (const op of operators.splice(0)) await op.stop();
});

const SETTLE_MS = 10_000;

function node(name: string, labels: Record<string, string>): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'm6i.xlarge',
        'topology.kubernetes.io/region': 'us-east-1',
        'topology.kubernetes.io/zone': name.endsWith('a') ? 'us-east-1a' : 'us-east-1b',
        ...labels,
      },
    },
    status: { capacity: { cpu: '4', memory: '16Gi' }, allocatable: { cpu: '4', memory: '16Gi' } },
  };
}

function policy(apply: Obj, name = 'apply'): Obj {
  return {
    apiVersion: 'kopek.dev/v1alpha1',
    kind: 'SavingsPolicy',
    metadata: { name },
    spec: { mode: 'Apply', apply: { actions: ['Spot'], cooldown: '1h', ...apply } },
  };
}

interface Fleet {
  op: FakeOperator;
  kube: FakeKube;
}

/** An operator in Apply mode with on-demand and Spot nodes, and Deployments settled on on-demand. */
async function fleet(
  names: string[],
  options: {
    apply?: Obj;
    /** An API that already holds the fleet (a restart). */
    kube?: FakeKube;
    clock?: ManualClock;
    labels?: Obj;
    /** More objects for a new fleet. */
    extra?: Obj[];
    /** --dry-run. */
    dryRun?: boolean;
    /** Services of a new fleet. */
    services?: Obj[];
    /** Where a new fleet's Deployments run (default: two pods in zone a, one in b). */
    placedOn?: string[];
    /** The API server's Kubernetes minor version. */
    minor?: string;
    /** Of a new fleet's Deployments (default 3). */
    replicas?: number;
    /** More nodes for a new fleet. */
    nodes?: Obj[];
    /** The registry's answers (default: none, so Arm64 stays Unknown). */
    imagePlatforms?: ImagePlatformSource;
    /** Watch events of a new fleet arrive this long after the writes (a busy API server). */
    watchLatencyMs?: number;
  } = {},
): Promise<Fleet> {
  const clock =
    options.clock ?? (options.watchLatencyMs !== undefined ? new ManualClock() : undefined);
  const kube =
    options.kube ??
    new FakeKube({
      ...(options.minor ? { minor: options.minor } : {}),
      ...(clock && options.watchLatencyMs !== undefined
        ? { watchLatency: { clock, ms: options.watchLatencyMs } }
        : {}),
    });
  if (!options.kube) {
    // PodDisruptionBudgets, the only extra objects these tests need.
    for (const pdb of options.extra ?? []) kube.put(RESOURCES.poddisruptionbudgets, pdb);
    for (const service of options.services ?? []) kube.put(RESOURCES.services, service);
    kube.put(RESOURCES.nodes, node('od-a', { 'karpenter.sh/capacity-type': 'on-demand' }));
    kube.put(RESOURCES.nodes, node('od-b', { 'karpenter.sh/capacity-type': 'on-demand' }));
    kube.put(RESOURCES.nodes, node('spot-a', { 'karpenter.sh/capacity-type': 'spot' }));
    kube.put(RESOURCES.nodes, node('spot-b', { 'karpenter.sh/capacity-type': 'spot' }));
    for (const extra of options.nodes ?? []) kube.put(RESOURCES.nodes, extra);
    kube.put(RESOURCES.savingspolicies, policy(options.apply ?? {}));
    for (const name of names) {
      const d = deployment('shop', name, options.replicas ? { replicas: options.replicas } : {});
      if (options.labels) (d.metadata as Obj).labels = options.labels;
      kube.put(RESOURCES.deployments, d);
      rollOut(kube, name, options.placedOn ?? ['od-a', 'od-b', 'od-a']);
    }
  }
  const op = await startFakeOperator({
    kube,
    ...(clock ? { clock } : {}),
    ...(options.imagePlatforms ? { imagePlatforms: options.imagePlatforms } : {}),
    apply: { applyEnabled: true, settleMs: SETTLE_MS, dryRun: options.dryRun === true },
  });
  operators.push(op);
  await op.until(() => names.every((n) => recommendationOf(kube, 'shop', n)?.status !== undefined));
  return { op, kube };
}

/**
 * Plays the Deployment controller: a ReplicaSet for the current template and its pods on
 * `nodes` (Ready unless `pending`, where the scheduler cannot place them), status rolled out.
 */
function rollOut(
  kube: FakeKube,
  name: string,
  /** Node names; 'pending' for a pod the scheduler cannot place. */
  nodes: string[],
  readySince = '2026-01-01T00:00:00Z',
): void {
  const d = kube.object(RESOURCES.deployments, name, 'shop') as Obj & {
    metadata: { uid: string; generation: number; annotations?: Record<string, string> };
  };
  const revision = String(d.metadata.generation);
  const rsName = `${name}-${revision}`;
  const rs = kube.put(RESOURCES.replicasets, {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: rsName,
      namespace: 'shop',
      annotations: { 'deployment.kubernetes.io/revision': revision },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: d.metadata.uid, controller: true },
      ],
    },
    spec: { template: (d.spec as Obj).template },
  }) as { metadata: { uid: string } };
  for (const pod of kube.objects(RESOURCES.pods))
    if (((pod.metadata as Obj).name as string).startsWith(`${name}-`))
      kube.remove(RESOURCES.pods, (pod.metadata as Obj).name as string, 'shop');
  nodes.forEach((nodeName, i) => {
    const pending = nodeName === 'pending';
    kube.put(RESOURCES.pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${rsName}-${i}`,
        namespace: 'shop',
        labels: { app: name },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rsName, uid: rs.metadata.uid },
        ],
      },
      spec: {
        ...(pending ? {} : { nodeName }),
        containers: [{ name, resources: { requests: { cpu: '500m', memory: '512Mi' } } }],
      },
      status: pending
        ? {
            phase: 'Pending',
            conditions: [
              {
                type: 'PodScheduled',
                status: 'False',
                reason: 'Unschedulable',
                lastTransitionTime: readySince,
                message: '0/4 nodes are available: 2 node(s) had untolerated taint.',
              },
            ],
          }
        : {
            phase: 'Running',
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: readySince }],
            containerStatuses: [{ name, restartCount: 0, ready: true }],
          },
    });
  });
  const ready = nodes.filter((n) => n !== 'pending').length;
  kube.put(RESOURCES.deployments, {
    ...d,
    metadata: { ...d.metadata, annotations: { 'deployment.kubernetes.io/revision': revision } },
    status: {
      observedGeneration: d.metadata.generation,
      replicas: nodes.length,
      updatedReplicas: nodes.length,
      readyReplicas: ready,
      availableReplicas: ready,
    },
  });
}

/** A registry whose every image offers linux/amd64 and linux/arm64. */
const MULTI_ARCH: ImagePlatformSource = {
  resolve: (requests) =>
    Promise.resolve(
      Object.fromEntries(
        requests.map((r) => [r.image, { platforms: ['linux/amd64', 'linux/arm64'] }]),
      ),
    ),
};

function applied(kube: FakeKube, name: string): AppliedChange | undefined {
  return (recommendationOf(kube, 'shop', name)?.status as { applied?: AppliedChange } | undefined)
    ?.applied;
}

/** What status.applied held when the last patch reached the API. */
function statusAtPatch(kube: FakeKube, name: string): () => AppliedChange | undefined {
  let atPatch: AppliedChange | undefined;
  const send = kube.patch.bind(kube);
  kube.patch = (...args: Parameters<FakeKube['patch']>) => {
    atPatch = applied(kube, name);
    return send(...args);
  };
  return () => atPatch;
}

function approve(kube: FakeKube, name: string, actions: string[]): void {
  const wrec = recommendationOf(kube, 'shop', name) as Obj;
  kube.put(RESOURCES.workloadrecommendations, {
    ...wrec,
    spec: { ...(wrec.spec as Obj), approve: actions },
  });
}

function template(kube: FakeKube, name: string): Obj {
  return ((kube.object(RESOURCES.deployments, name, 'shop')?.spec as Obj).template as Obj)
    .spec as Obj;
}

/** The refusal codes kopek logged for a workload. */
function refusals(op: FakeOperator, name: string): unknown[] {
  return op.log.lines
    .filter((l) => l.msg === 'not applying' && l.name === name)
    .map((l) => l.reason);
}

/** The reasons of the Events kopek recorded about one object, in order. */
function eventsOn(kube: FakeKube, kind: string, name: string): unknown[] {
  return kube
    .objects(EVENTS)
    .filter((e) => {
      const involved = e.involvedObject as Obj;
      return involved.kind === kind && involved.name === name;
    })
    .map((e) => e.reason);
}

function patches(kube: FakeKube): number {
  return kube.count('patch', 'deployments');
}

describe('Apply mode', () => {
  it('changes nothing while no person approved the change', async () => {
    const { op, kube } = await fleet(['web']);
    expect(
      (recommendationOf(kube, 'shop', 'web')?.status as { spot?: { verdict: string } }).spot
        ?.verdict,
    ).toBe('Recommended');
    await op.clock.advance(5 * 60_000);
    expect(patches(kube)).toBe(0);
    expect(applied(kube, 'web')).toBeUndefined();
    expect(refusals(op, 'web')).toEqual(['NotApproved']);
  });

  it('applies an approved Spot move, records the previous state first, and succeeds once settled', async () => {
    const { op, kube } = await fleet(['web']);
    const before = template(kube, 'web');
    const atPatch = statusAtPatch(kube, 'web');
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    expect(atPatch()?.outcome).toBe('InProgress');
    expect(atPatch()?.previousState).toBeDefined();
    const inProgress = applied(kube, 'web');
    expect(inProgress?.outcome).toBe('InProgress');
    expect(JSON.parse(inProgress?.previousState ?? '{}')).toEqual({ podSpec: {}, services: [] });
    const after = template(kube, 'web');
    expect(after.tolerations).toEqual(
      expect.arrayContaining([expect.objectContaining({ key: 'karpenter.sh/capacity-type' })]),
    );
    expect(before.tolerations).toBeUndefined();

    rollOut(kube, 'web', ['spot-a', 'spot-b', 'spot-a'], new Date(op.clock.now()).toISOString());
    await op.until(() => applied(kube, 'web')?.outcome === 'Succeeded', 10 * 60_000);
    const done = applied(kube, 'web');
    expect(done?.reason).toBe('RolledOut');
    expect(Number(done?.realizedSavings?.[0]?.monthlySavingsUSD)).toBeGreaterThan(0);
    op.apply?.updateMetrics();
    const gauge = await op.metrics.workloadRealizedSavings.get();
    expect(gauge.values).toEqual([
      expect.objectContaining({
        labels: { namespace: 'shop', kind: 'Deployment', name: 'web', optimization: 'Spot' },
      }),
    ]);
    expect(kube.count('create', 'events')).toBeGreaterThanOrEqual(4);
  });

  it('reverts a rollout whose new pods cannot be scheduled, to exactly the template before', async () => {
    const { op, kube } = await fleet(['web']);
    const before = template(kube, 'web');
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    // No Spot capacity: the new pods stay Pending.
    rollOut(kube, 'web', ['pending', 'pending', 'pending'], new Date(op.clock.now()).toISOString());
    await op.until(() => applied(kube, 'web')?.outcome === 'RollingBack', 5 * 60_000);
    expect(applied(kube, 'web')?.reason).toBe('PodsUnschedulable');
    await op.until(() => patches(kube) === 2);
    expect(template(kube, 'web')).toEqual(before);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a']);
    await op.until(() => applied(kube, 'web')?.outcome === 'RolledBack', 5 * 60_000);
    expect(template(kube, 'web')).toEqual(before);
    expect((await op.metrics.rollbacks.get()).values).toEqual([
      expect.objectContaining({ labels: { outcome: 'RolledBack' }, value: 1 }),
    ]);
    // Held: not tried again on the same spec, even after the cooldown.
    await op.clock.advance(2 * 3_600_000);
    expect(patches(kube)).toBe(2);
  });

  it('stops, and overwrites nothing, when a person changes the affinity mid-rollout', async () => {
    const { op, kube } = await fleet(['web']);
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    const d = kube.object(RESOURCES.deployments, 'web', 'shop') as Obj & { spec: Obj };
    const person = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'team', operator: 'In', values: ['payments'] }] },
          ],
        },
      },
    };
    ((d.spec.template as Obj).spec as Obj).affinity = person;
    kube.put(RESOURCES.deployments, d);
    await op.until(() => applied(kube, 'web')?.outcome === 'Failed', 5 * 60_000);
    expect(applied(kube, 'web')?.reason).toBe('ChangedByOthers');
    await op.clock.advance(2 * 3_600_000);
    expect(patches(kube)).toBe(1);
    expect(template(kube, 'web').affinity).toEqual(person);
  });

  it('resumes from status.applied after a restart and finishes the revert', async () => {
    const clock = new ManualClock();
    const first = await fleet(['web'], { clock });
    const { kube } = first;
    const before = template(kube, 'web');
    approve(kube, 'web', ['Spot']);
    await first.op.until(() => applied(kube, 'web')?.workloadGeneration !== undefined);
    await first.op.stop();
    operators.splice(operators.indexOf(first.op), 1);
    rollOut(kube, 'web', ['pending', 'pending', 'pending'], new Date(clock.now()).toISOString());
    const second = await fleet(['web'], { kube, clock });
    await second.op.until(() => patches(kube) === 2, 5 * 60_000);
    expect(template(kube, 'web')).toEqual(before);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a']);
    await second.op.until(() => applied(kube, 'web')?.outcome === 'RolledBack', 5 * 60_000);
  });

  it('finishes the revert the leader before it sent, when its cache still says InProgress', async () => {
    const { op, kube } = await fleet(['web'], { watchLatencyMs: 1500 });
    const standby = await startFakeOperator({
      kube,
      clock: op.clock,
      standby: true,
      apply: { applyEnabled: true, settleMs: SETTLE_MS },
    });
    operators.push(standby);
    const before = template(kube, 'web');
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    rollOut(kube, 'web', ['pending', 'pending', 'pending'], new Date(op.clock.now()).toISOString());
    await op.until(() => patches(kube) === 2, 5 * 60_000);
    // The leader wrote RollingBack and sent the revert, then stopped; the standby leads at once,
    // its cache 1.5 s behind.
    await op.stop();
    operators.splice(operators.indexOf(op), 1);
    expect(applied(kube, 'web')?.outcome).toBe('RollingBack');
    standby.lead();
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a']);
    await standby.until(() => applied(kube, 'web')?.outcome !== 'RollingBack', 5 * 60_000);
    expect(applied(kube, 'web')?.outcome).toBe('RolledBack');
    expect(template(kube, 'web')).toEqual(before);
    expect(patches(kube)).toBe(2);
  });

  it('rolls out one change at a time with maxConcurrent 1', async () => {
    const { op, kube } = await fleet(['web', 'api']);
    approve(kube, 'web', ['Spot']);
    approve(kube, 'api', ['Spot']);
    await op.until(() => patches(kube) === 1);
    await op.clock.advance(60_000);
    expect(patches(kube)).toBe(1);
    expect([...refusals(op, 'web'), ...refusals(op, 'api')]).toContain('MaxConcurrentReached');
    const first = applied(kube, 'web') ? 'web' : 'api';
    const second = first === 'web' ? 'api' : 'web';
    expect(applied(kube, second)).toBeUndefined();
    rollOut(kube, first, ['spot-a', 'spot-b', 'spot-a'], new Date(op.clock.now()).toISOString());
    await op.until(() => applied(kube, first)?.outcome === 'Succeeded', 5 * 60_000);
    await op.until(() => patches(kube) === 2, 5 * 60_000);
    expect(applied(kube, second)?.outcome).toBe('InProgress');
  });

  it('reports its pending work: an approval waiting its turn, a rollout, a revert, a retry; 0 when done', async () => {
    const { op, kube } = await fleet(['web', 'api']);
    const apply = op.apply;
    if (!apply) throw new Error('no apply controller');
    // kopek_pending_work{controller="apply"} as a scrape reads it.
    const scraped = async (): Promise<Record<string, number>> => {
      apply.updateMetrics();
      const work: Record<string, number> = {};
      for (const v of (await op.metrics.pendingWork.get()).values)
        if (v.labels.controller === 'apply') work[String(v.labels.kind)] = v.value;
      return work;
    };
    const nothingPending: ApplyPendingWork = {
      queued: 0,
      retrying: 0,
      waiting: 0,
      rolling_out: 0,
      reverting: 0,
    };
    // Every kind seen above 0 at some look.
    const seen = new Set<string>();
    const pending = (): ApplyPendingWork => {
      const work = apply.pending();
      for (const [kind, value] of Object.entries(work)) if (value > 0) seen.add(kind);
      return work;
    };
    const idle = (): boolean => Object.values(pending()).every((v) => v === 0);
    await op.until(idle);
    expect(await scraped()).toEqual(nothingPending);

    // maxConcurrent 1: one change rolls out, the other approval waits for the slot.
    approve(kube, 'web', ['Spot']);
    approve(kube, 'api', ['Spot']);
    await op.until(() => pending().waiting === 1);
    const first = applied(kube, 'web') ? 'web' : 'api';
    const second = first === 'web' ? 'api' : 'web';
    expect(pending()).toMatchObject({ rolling_out: 1, reverting: 0, waiting: 1 });
    await op.clock.advance(60_000);
    expect(pending()).toMatchObject({ rolling_out: 1, waiting: 1 });

    // The first fails (no Spot capacity) and is reverted.
    rollOut(kube, first, ['pending', 'pending', 'pending'], new Date(op.clock.now()).toISOString());
    await op.until(() => pending().reverting === 1, 5 * 60_000);
    expect(pending()).toMatchObject({ rolling_out: 0, waiting: 1 });
    rollOut(kube, first, ['od-a', 'od-b', 'od-a']);
    // The slot is free: the second rolls out; a failed read of it is retried.
    kube.failNext(
      { verb: 'get', resource: 'deployments', name: second },
      apiError(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'),
    );
    await op.until(() => pending().retrying === 1, 5 * 60_000);
    await op.until(() => applied(kube, second)?.outcome === 'InProgress', 5 * 60_000);
    expect(applied(kube, first)?.outcome).toBe('RolledBack');
    expect(pending()).toMatchObject({ rolling_out: 1, reverting: 0, waiting: 0 });
    rollOut(kube, second, ['spot-a', 'spot-b', 'spot-a'], new Date(op.clock.now()).toISOString());
    await op.until(() => applied(kube, second)?.outcome === 'Succeeded', 5 * 60_000);
    await op.until(idle);
    expect(await scraped()).toEqual(nothingPending);
    expect([...seen].sort()).toEqual(['queued', 'retrying', 'reverting', 'rolling_out', 'waiting']);
  });

  it('frees the maxConcurrent slot of a workload deleted mid-rollout, with its recommendation', async () => {
    const { op, kube } = await fleet(['web', 'api']);
    approve(kube, 'web', ['Spot']);
    approve(kube, 'api', ['Spot']);
    await op.until(() => patches(kube) === 1);
    const first = applied(kube, 'web') ? 'web' : 'api';
    const second = first === 'web' ? 'api' : 'web';
    // A person deletes the workload; the garbage collector deletes its recommendation.
    kube.remove(RESOURCES.deployments, first, 'shop');
    kube.remove(RESOURCES.workloadrecommendations, `deployment-${first}`, 'shop');
    await op.until(() => patches(kube) === 2, 5 * 60_000);
    expect(applied(kube, second)?.outcome).toBe('InProgress');
  });

  it('waits for the cooldown before the next change to the same workload', async () => {
    const { op, kube } = await fleet(['web'], { apply: { actions: ['Spot', 'Arm64'] } });
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    rollOut(kube, 'web', ['spot-a', 'spot-b', 'spot-a'], new Date(op.clock.now()).toISOString());
    await op.until(() => applied(kube, 'web')?.outcome === 'Succeeded', 5 * 60_000);
    const succeededAt = op.clock.now();
    // A new spec (and a new approval) within the hour's cooldown: nothing happens.
    const d = kube.object(RESOURCES.deployments, 'web', 'shop') as Obj & { spec: Obj };
    ((d.spec.template as Obj).spec as Obj).nodeSelector = {
      'karpenter.sh/capacity-type': 'on-demand',
    };
    kube.put(RESOURCES.deployments, d);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a']);
    await op.clock.advance(30 * 60_000);
    expect(patches(kube)).toBe(1);
    expect(refusals(op, 'web')).toContain('CoolingDown');
    expect(op.clock.now() - succeededAt).toBeLessThan(3_600_000);
    // After the hour, the pin is removed again.
    await op.clock.advance(35 * 60_000);
    await op.until(() => patches(kube) === 2);
  });

  it.each([
    {
      landedOn: 'amd64 Spot nodes (kopek pinned amd64)',
      before: ['od-a', 'od-b', 'od-a'],
      after: ['spot-a', 'spot-b', 'spot-a'],
      arm64: 'Possible',
      afterCooldown: 'applies Arm64',
    },
    {
      landedOn: 'arm64 Spot nodes',
      before: ['od-a', 'arm-a', 'od-b'],
      after: ['arm-spot-a', 'arm-spot-b', 'arm-spot-a'],
      arm64: 'AlreadyOptimized',
      afterCooldown: 'VerdictNotActionable',
    },
  ])(
    'answers Arm64 approved right after a Spot move that landed on $landedOn with CoolingDown, and decides once it ends',
    async ({ before, after, arm64, afterCooldown }) => {
      const arm = {
        'kubernetes.io/arch': 'arm64',
        'node.kubernetes.io/instance-type': 'c7g.xlarge',
      };
      const { op, kube } = await fleet(['web'], {
        apply: { actions: ['Spot', 'Arm64'] },
        imagePlatforms: MULTI_ARCH,
        nodes: [
          node('arm-a', { ...arm, 'karpenter.sh/capacity-type': 'on-demand' }),
          node('arm-spot-a', { ...arm, 'karpenter.sh/capacity-type': 'spot' }),
          node('arm-spot-b', { ...arm, 'karpenter.sh/capacity-type': 'spot' }),
        ],
        placedOn: before,
      });
      approve(kube, 'web', ['Spot']);
      await op.until(() => patches(kube) === 1);
      rollOut(kube, 'web', after, new Date(op.clock.now()).toISOString());
      await op.until(() => applied(kube, 'web')?.outcome === 'Succeeded', 5 * 60_000);
      const status = () =>
        recommendationOf(kube, 'shop', 'web')?.status as WorkloadRecommendationStatus;
      expect([status().spot?.verdict, status().arm64?.verdict]).toEqual([
        'AlreadyOptimized',
        arm64,
      ]);
      approve(kube, 'web', ['Spot', 'Arm64']);
      await op.clock.advance(60_000);
      expect(refusals(op, 'web').at(-1)).toBe('CoolingDown');
      expect(patches(kube)).toBe(1);
      await op.clock.advance(3_600_000);
      if (afterCooldown === 'applies Arm64') {
        expect(patches(kube)).toBe(2);
        expect(applied(kube, 'web')?.actions).toEqual(['Arm64']);
      } else {
        expect(patches(kube)).toBe(1);
        expect(refusals(op, 'web').at(-1)).toBe(afterCooldown);
        expect(
          op.log.lines.find((l) => l.msg === 'not applying' && l.reason === afterCooldown)?.message,
        ).toContain('Arm64 AlreadyOptimized');
      }
    },
  );

  it('does not patch a workload whose PodDisruptionBudget allows no disruption now', async () => {
    const pdb = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'web', namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'web' } }, maxUnavailable: 1 },
      status: { disruptionsAllowed: 0, currentHealthy: 3, expectedPods: 3 },
    };
    const { op, kube } = await fleet(['web'], { extra: [pdb] });
    approve(kube, 'web', ['Spot']);
    await op.clock.advance(5 * 60_000);
    expect(patches(kube)).toBe(0);
    expect(refusals(op, 'web')).toEqual(['NotApproved', 'DisruptionBudgetExhausted']);
    // Each refusal is told once, not at every look: on the recommendation, and (but for
    // NotApproved, which is about the recommendation) on the workload.
    expect(eventsOn(kube, 'WorkloadRecommendation', 'deployment-web')).toEqual([
      'NotApproved',
      'DisruptionBudgetExhausted',
    ]);
    expect(eventsOn(kube, 'Deployment', 'web')).toEqual(['DisruptionBudgetExhausted']);
  });

  it('does not patch a workload that Argo CD manages', async () => {
    const { op, kube } = await fleet(['web'], {
      labels: { 'argocd.argoproj.io/instance': 'shop' },
    });
    approve(kube, 'web', ['Spot']);
    await op.clock.advance(5 * 60_000);
    expect(patches(kube)).toBe(0);
    expect(refusals(op, 'web')).toEqual(['NotApproved', 'GitOpsManaged']);
    const ready = (
      recommendationOf(kube, 'shop', 'web')?.status as { conditions: { message: string }[] }
    ).conditions[0];
    expect(ready?.message).toContain('Managed by Argo CD');
  });

  it('with --dry-run, sends each distinct change once as a dry run, not at every resync', async () => {
    const { op, kube } = await fleet(['web'], { dryRun: true });
    const before = template(kube, 'web');
    approve(kube, 'web', ['Spot']);
    await op.until(() => patches(kube) === 1);
    // Five resyncs and more: the same change is neither sent nor logged again.
    await op.clock.advance(5 * 60_000);
    expect(patches(kube)).toBe(1);
    expect(op.log.lines.filter((l) => l.msg === 'dry run: would apply')).toHaveLength(1);
    expect(template(kube, 'web')).toEqual(before);
    expect(applied(kube, 'web')).toBeUndefined();
    // A different change (a person pinned the instance type meanwhile) is sent once more. (Not
    // a zone pin: with every pod on od-a, the Spot change would also add a spread over nodes.)
    const d = kube.object(RESOURCES.deployments, 'web', 'shop') as Obj;
    ((d.spec as Obj).template as Obj).spec = {
      ...template(kube, 'web'),
      nodeSelector: { 'node.kubernetes.io/instance-type': 'm6i.xlarge' },
    };
    kube.put(RESOURCES.deployments, d);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a']);
    await op.clock.advance(2 * 60_000);
    expect(patches(kube)).toBe(2);
    expect(op.log.lines.filter((l) => l.msg === 'dry run: would apply')).toHaveLength(2);
  });
});

/** A ClusterIP Service in front of the Deployment `name`, as a person would write it. */
function service(name: string, annotations?: Record<string, string>): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'shop', ...(annotations ? { annotations } : {}) },
    spec: {
      type: 'ClusterIP',
      clusterIP: '10.96.0.10',
      selector: { app: name },
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
    },
  };
}

function serviceOf(kube: FakeKube, name: string): Obj {
  return kube.object(RESOURCES.services, name, 'shop') as Obj;
}

/** The Service as a person reads it back: without the fields the API server keeps itself. */
function asWritten(s: Obj): Obj {
  const {
    resourceVersion: _rv,
    uid: _uid,
    generation: _g,
    managedFields: _m,
    creationTimestamp: _c,
    ...metadata
  } = s.metadata as Obj;
  return { ...s, metadata };
}

/** The Deployment's current pods restart again and again (the same revision: nothing rolls out). */
function crashLoop(kube: FakeKube, name: string): void {
  for (const pod of kube.objects(RESOURCES.pods)) {
    if (!((pod.metadata as Obj).name as string).startsWith(`${name}-`)) continue;
    kube.put(RESOURCES.pods, {
      ...pod,
      status: {
        ...(pod.status as Obj),
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [{ name, restartCount: 5, ready: false }],
      },
    });
  }
}

function servicePatches(kube: FakeKube): number {
  return kube.count('patch', 'services');
}

const CROSS_ZONE = { actions: ['CrossZone'] };

/** A server from before trafficDistribution, where Apply sets the topology-mode annotation. */
function fleetBeforeTrafficDistribution(): ReturnType<typeof fleet> {
  return fleet(['web'], {
    apply: CROSS_ZONE,
    // topology-mode wants 3 ready endpoints in each client zone.
    minor: '30',
    replicas: 6,
    placedOn: ['od-a', 'od-b', 'od-a', 'od-b', 'od-a', 'od-b'],
    services: [service('web', { 'team.example/owner': 'payments' })],
  });
}

describe('Apply mode: the Service change of CrossZone', () => {
  it('records the Service fields first, patches the Service only, and succeeds once settled', async () => {
    const { op, kube } = await fleet(['web'], { apply: CROSS_ZONE, services: [service('web')] });
    expect(
      (recommendationOf(kube, 'shop', 'web')?.status as { crossZone?: { verdict: string } })
        .crossZone?.verdict,
    ).toBe('Recommended');
    const atPatch = statusAtPatch(kube, 'web');
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => servicePatches(kube) === 1);
    // Stored before the patch was sent: the Service as it was, with nothing routing in-zone.
    expect(atPatch()?.outcome).toBe('InProgress');
    expect(JSON.parse(atPatch()?.previousState ?? '{}')).toEqual({
      podSpec: {},
      services: [{ name: 'web' }],
    });
    expect((serviceOf(kube, 'web').spec as Obj).trafficDistribution).toBe('PreferSameZone');
    // Two pods in zone a, one in b, clients in both: no spread needed, the pod template stays.
    expect(patches(kube)).toBe(0);
    await op.until(() => applied(kube, 'web')?.outcome === 'Succeeded', 10 * 60_000);
    expect(servicePatches(kube)).toBe(1);
    expect(kube.calls.filter((c) => c.verb === 'patch').map((c) => c.resource)).toEqual([
      'services',
    ]);
  });

  it('sets the topology-mode annotation where trafficDistribution is not served, keeping the other annotations', async () => {
    const { op, kube } = await fleetBeforeTrafficDistribution();
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => servicePatches(kube) === 1);
    expect((serviceOf(kube, 'web').metadata as Obj).annotations).toEqual({
      'team.example/owner': 'payments',
      'service.kubernetes.io/topology-mode': 'Auto',
    });
    expect((serviceOf(kube, 'web').spec as Obj).trafficDistribution).toBeUndefined();
  });

  it('reverts the Service to exactly what it was when the pods fail after the change', async () => {
    const { op, kube } = await fleetBeforeTrafficDistribution();
    const before = asWritten(serviceOf(kube, 'web'));
    const template = JSON.stringify(kube.object(RESOURCES.deployments, 'web', 'shop')?.spec);
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => servicePatches(kube) === 1);
    crashLoop(kube, 'web');
    await op.until(() => applied(kube, 'web')?.outcome === 'RolledBack', 5 * 60_000);
    expect(applied(kube, 'web')?.reason).toBe('PodsCrashLooping');
    expect(servicePatches(kube)).toBe(2);
    expect(asWritten(serviceOf(kube, 'web'))).toEqual(before);
    expect(JSON.stringify(kube.object(RESOURCES.deployments, 'web', 'shop')?.spec)).toBe(template);
    expect(patches(kube)).toBe(0);
  });

  it('stops, and overwrites nothing, when a person changes the Service after kopek did', async () => {
    const { op, kube } = await fleet(['web'], { apply: CROSS_ZONE, services: [service('web')] });
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => servicePatches(kube) === 1);
    const s = serviceOf(kube, 'web');
    kube.put(RESOURCES.services, {
      ...s,
      spec: { ...(s.spec as Obj), trafficDistribution: 'PreferClose' },
    });
    await op.until(() => applied(kube, 'web')?.outcome === 'Failed', 5 * 60_000);
    expect(applied(kube, 'web')?.reason).toBe('ChangedByOthers');
    expect(applied(kube, 'web')?.message).toContain('Service web');
    await op.clock.advance(2 * 3_600_000);
    expect(servicePatches(kube)).toBe(1);
    expect((serviceOf(kube, 'web').spec as Obj).trafficDistribution).toBe('PreferClose');
  });

  it('spreads the pods first and changes the Service only after they rolled out, across a restart', async () => {
    const clock = new ManualClock();
    // Every pod in zone a, clients in a and b: the pods must be spread over zones first.
    const options = {
      clock,
      apply: CROSS_ZONE,
      services: [service('web')],
      placedOn: ['od-a', 'od-a', 'od-a'],
    };
    const first = await fleet(['web'], options);
    const { kube } = first;
    approve(kube, 'web', ['CrossZone']);
    await first.op.until(() => applied(kube, 'web')?.workloadGeneration !== undefined);
    expect(template(kube, 'web').topologySpreadConstraints).toEqual([
      expect.objectContaining({ topologyKey: 'topology.kubernetes.io/zone' }),
    ]);
    expect(servicePatches(kube)).toBe(0);
    await first.op.stop();
    operators.splice(operators.indexOf(first.op), 1);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a'], new Date(clock.now()).toISOString());
    const second = await fleet(['web'], { ...options, kube });
    await second.op.until(() => applied(kube, 'web')?.outcome === 'Succeeded', 10 * 60_000);
    expect(servicePatches(kube)).toBe(1);
    expect(patches(kube)).toBe(1);
    expect((serviceOf(kube, 'web').spec as Obj).trafficDistribution).toBe('PreferSameZone');
    expect(applied(kube, 'web')?.message).toContain('Service web changed after it');
  });

  it('reverts the spread and leaves the Service untouched when the spread does not roll out', async () => {
    const { op, kube } = await fleet(['web'], {
      apply: CROSS_ZONE,
      services: [service('web')],
      placedOn: ['od-a', 'od-a', 'od-a'],
    });
    const before = asWritten(serviceOf(kube, 'web'));
    const podSpec = template(kube, 'web');
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => patches(kube) === 1);
    rollOut(kube, 'web', ['pending', 'pending', 'pending'], new Date(op.clock.now()).toISOString());
    await op.until(() => patches(kube) === 2, 5 * 60_000);
    rollOut(kube, 'web', ['od-a', 'od-a', 'od-a']);
    await op.until(() => applied(kube, 'web')?.outcome === 'RolledBack', 5 * 60_000);
    expect(template(kube, 'web')).toEqual(podSpec);
    expect(servicePatches(kube)).toBe(0);
    expect(asWritten(serviceOf(kube, 'web'))).toEqual(before);
  });

  it('reverts the spread when the Service change is refused after it rolled out, and does not retry', async () => {
    const { op, kube } = await fleet(['web'], {
      apply: CROSS_ZONE,
      services: [service('web')],
      placedOn: ['od-a', 'od-a', 'od-a'],
    });
    const before = asWritten(serviceOf(kube, 'web'));
    const podSpec = template(kube, 'web');
    kube.failNext(
      { verb: 'patch', resource: 'services' },
      apiError(422, 'Invalid', 'ValidatingAdmissionPolicy "no-zone-routing" denied request'),
    );
    approve(kube, 'web', ['CrossZone']);
    await op.until(() => patches(kube) === 1);
    rollOut(kube, 'web', ['od-a', 'od-b', 'od-a'], new Date(op.clock.now()).toISOString());
    await op.until(() => patches(kube) === 2, 5 * 60_000);
    expect(servicePatches(kube)).toBe(1);
    expect(template(kube, 'web')).toEqual(podSpec);
    rollOut(kube, 'web', ['od-a', 'od-a', 'od-a']);
    await op.until(() => applied(kube, 'web')?.outcome === 'RolledBack', 5 * 60_000);
    expect(applied(kube, 'web')?.reason).toBe('PatchRefused');
    expect(applied(kube, 'web')?.message).toContain('no-zone-routing');
    await op.clock.advance(2 * 3_600_000);
    expect([patches(kube), servicePatches(kube)]).toEqual([2, 1]);
    expect(asWritten(serviceOf(kube, 'web'))).toEqual(before);
  });

  it('finishes, without a false refusal, when the Service was changed but that was not recorded', async () => {
    const { op, kube } = await fleet(['web'], { apply: CROSS_ZONE, services: [service('web')] });
    const send = kube.patch.bind(kube);
    kube.patch = (...args: Parameters<FakeKube['patch']>) => {
      // The status write after the Service patch fails: kopek looks again from status.applied.
      if (args[0].plural === 'services')
        kube.failNext(
          { verb: 'apply-status', resource: 'workloadrecommendations' },
          apiError(503, 'ServiceUnavailable'),
        );
      return send(...args);
    };
    approve(kube, 'web', ['CrossZone']);
    await op.until(
      () => ['Succeeded', 'Failed'].includes(applied(kube, 'web')?.outcome ?? ''),
      10 * 60_000,
    );
    expect(applied(kube, 'web')?.outcome).toBe('Succeeded');
    expect(servicePatches(kube)).toBe(1);
    expect((serviceOf(kube, 'web').spec as Obj).trafficDistribution).toBe('PreferSameZone');
  });
});

describe('Apply mode: a change the API server refuses', () => {
  it.each([
    {
      part: 'pod template',
      action: 'Spot',
      resource: 'deployments',
      refusal: apiError(
        403,
        'Forbidden',
        'admission webhook "policy.example" denied the request: no spot',
      ),
      options: {},
      patchesOf: patches,
      read: (kube: FakeKube): Obj => template(kube, 'web'),
    },
    {
      // The cache still holds InProgress without a generation when kopek looks again.
      part: 'pod template, with watch events behind the writes,',
      action: 'Spot',
      resource: 'deployments',
      refusal: apiError(422, 'Invalid', 'ValidatingAdmissionPolicy "needs-ticket" denied request'),
      options: { watchLatencyMs: 1500 },
      patchesOf: patches,
      read: (kube: FakeKube): Obj => template(kube, 'web'),
    },
    {
      part: 'Service',
      action: 'CrossZone',
      resource: 'services',
      refusal: apiError(
        422,
        'Invalid',
        'ValidatingAdmissionPolicy "no-zone-routing" denied request',
      ),
      options: { apply: CROSS_ZONE, services: [service('web')] },
      patchesOf: servicePatches,
      read: (kube: FakeKube): Obj => asWritten(serviceOf(kube, 'web')),
    },
  ])(
    "ends Failed with the server's message when the $part patch is refused, and does not retry",
    async ({ action, resource, refusal, options, patchesOf, read }) => {
      const { op, kube } = await fleet(['web'], options);
      const before = read(kube);
      kube.failNext({ verb: 'patch', resource }, refusal);
      approve(kube, 'web', [action]);
      await op.until(() => applied(kube, 'web')?.outcome === 'Failed');
      expect(applied(kube, 'web')?.reason).toBe('PatchRefused');
      expect(applied(kube, 'web')?.message).toContain(refusal.message);
      await op.clock.advance(2 * 3_600_000);
      expect(patchesOf(kube)).toBe(1);
      expect(read(kube)).toEqual(before);
    },
  );

  it("starts no change on an approval whose refusal the cache has not seen yet (the last leader's write)", async () => {
    const { op, kube } = await fleet(['web'], { watchLatencyMs: 1500 });
    const before = template(kube, 'web');
    const generation = (kube.object(RESOURCES.deployments, 'web', 'shop')?.metadata as Obj)
      .generation as number;
    approve(kube, 'web', ['Spot']);
    // Written just after the approval, by the replica that led before: the patch was refused.
    await op.clock.advance(100);
    const at = new Date(op.clock.now()).toISOString();
    const wrec = recommendationOf(kube, 'shop', 'web') as Obj;
    const refused: AppliedChange = {
      actions: ['Spot'],
      appliedAt: at,
      updatedAt: at,
      outcome: 'Failed',
      reason: 'PatchRefused',
      message: 'admission webhook "policy.example" denied the request: no spot',
      workloadGeneration: generation,
    };
    kube.put(RESOURCES.workloadrecommendations, {
      ...wrec,
      status: { ...(wrec.status as Obj), applied: refused },
    });
    await op.clock.advance(2 * 3_600_000);
    expect(applied(kube, 'web')).toEqual(refused);
    expect(patches(kube)).toBe(0);
    expect(template(kube, 'web')).toEqual(before);
  });

  it('does not send the refused patch again when the answer to its Failed write is lost', async () => {
    const { op, kube } = await fleet(['web'], { watchLatencyMs: 1500 });
    const before = template(kube, 'web');
    kube.failNext({ verb: 'patch', resource: 'deployments' }, apiError(403, 'Forbidden'));
    // The server stores the Failed status once InProgress has reached the cache (a slow
    // write), and its answer never reaches kopek.
    const write = kube.apply.bind(kube);
    let lost = false;
    kube.apply = async <T>(...args: Parameters<FakeKube['apply']>): Promise<T> => {
      const status = (args[1] as { status?: { applied?: AppliedChange } }).status;
      if (lost || status?.applied?.outcome !== 'Failed') return write<T>(...args);
      await new Promise<void>((resolve) => op.clock.setTimeout(resolve, 2000));
      await write<T>(...args);
      lost = true;
      throw new Error('socket hang up');
    };
    approve(kube, 'web', ['Spot']);
    await op.until(() => lost);
    await op.clock.advance(2 * 3_600_000);
    expect(applied(kube, 'web')?.outcome).toBe('Failed');
    expect(patches(kube)).toBe(1);
    expect(template(kube, 'web')).toEqual(before);
  });
});
