import { describe, expect, it } from 'vitest';
import {
  rolloutFacts,
  rolloutVerdict,
  shareOnTarget,
  type PodFact,
  type RolloutFacts,
  type VerdictOptions,
} from './rollout.ts';

const T0 = Date.parse('2026-12-01T12:00:00Z');
const OPTIONS: VerdictOptions = {
  startedAt: T0,
  now: T0 + 60_000,
  progressTimeoutMs: 600_000,
  settleMs: 120_000,
};

function pod(name: string, extra: Partial<PodFact> = {}): PodFact {
  return {
    name,
    revision: 'new',
    phase: 'Running',
    ready: true,
    readySince: T0 + 5_000,
    restarts: 0,
    ...extra,
  };
}

function facts(extra: Partial<RolloutFacts> = {}): RolloutFacts {
  return {
    kind: 'Deployment',
    observed: true,
    desired: 2,
    updated: 2,
    available: 2,
    total: 2,
    pods: [pod('a'), pod('b')],
    ...extra,
  };
}

const at = (seconds: number): VerdictOptions => ({ ...OPTIONS, now: T0 + seconds * 1000 });

describe('the rollout verdict', () => {
  it.each<[string, RolloutFacts, VerdictOptions, string]>([
    ['rolled out, Ready for less than the settle period', facts(), at(60), 'Progressing Settling'],
    ['rolled out and settled', facts(), at(130), 'Succeeded RolledOut'],
    [
      'controller has not observed the spec',
      facts({ observed: false }),
      at(130),
      'Progressing RollingOut',
    ],
    ['old pods not yet gone', facts({ total: 3 }), at(130), 'Progressing RollingOut'],
    [
      'not rolled out by the progressTimeout',
      facts({ updated: 1 }),
      at(601),
      'Failed ProgressTimeout',
    ],
    [
      'the Deployment controller gave up',
      facts({
        stalled: {
          reason: 'ProgressDeadlineExceeded',
          message: 'ReplicaSet "x" has timed out progressing.',
        },
      }),
      at(30),
      'Failed ProgressDeadlineExceeded',
    ],
    [
      'a new pod unschedulable for less than the settle period',
      facts({
        updated: 1,
        pods: [
          pod('a'),
          pod('b', { ready: false, phase: 'Pending', unschedulableSince: T0 + 10_000 }),
        ],
      }),
      at(100),
      'Progressing RollingOut',
    ],
    [
      'a new pod unschedulable for the settle period',
      facts({
        updated: 1,
        pods: [
          pod('a'),
          pod('b', { ready: false, phase: 'Pending', unschedulableSince: T0 + 10_000 }),
        ],
      }),
      at(130),
      'Failed PodsUnschedulable',
    ],
    [
      'new pods crash-looping, old ones steady',
      facts({
        pods: [
          pod('a', { ready: false, restarts: 3 }),
          pod('old', { revision: 'old', restarts: 0 }),
        ],
      }),
      at(30),
      'Failed PodsCrashLooping',
    ],
    [
      'new pods restart as often as the old ones always did',
      facts({
        pods: [pod('a', { restarts: 3 }), pod('b'), pod('old', { revision: 'old', restarts: 7 })],
      }),
      at(130),
      'Succeeded RolledOut',
    ],
    [
      'a Rollout not yet Healthy',
      facts({ kind: 'Rollout', phase: 'Progressing' }),
      at(130),
      'Progressing RollingOut',
    ],
    [
      'a Healthy Rollout',
      facts({ kind: 'Rollout', phase: 'Healthy' }),
      at(130),
      'Succeeded RolledOut',
    ],
    [
      'an aborted Rollout',
      facts({
        kind: 'Rollout',
        stalled: { reason: 'RolloutAborted', message: 'Rollout aborted update to revision 2' },
      }),
      at(30),
      'Failed RolloutAborted',
    ],
    [
      'a CronJob before its next run',
      facts({ kind: 'CronJob', desired: 0, pods: [] }),
      at(3600),
      'Progressing WaitingForRun',
    ],
    [
      "a CronJob's first Job succeeded",
      facts({
        kind: 'CronJob',
        desired: 0,
        job: { name: 'report-1', startedAt: T0, succeeded: true },
      }),
      at(30),
      'Succeeded JobSucceeded',
    ],
    [
      "a CronJob's first Job failed",
      facts({
        kind: 'CronJob',
        desired: 0,
        job: { name: 'report-1', startedAt: T0, succeeded: false, failed: 'BackoffLimitExceeded' },
      }),
      at(30),
      'Failed JobFailed',
    ],
    [
      "a CronJob's Job pods stuck Pending past the timeout, counted from the Job",
      facts({
        kind: 'CronJob',
        desired: 0,
        job: { name: 'report-1', startedAt: T0 + 3_000_000, succeeded: false },
        pods: [pod('j', { ready: false, phase: 'Pending' })],
      }),
      at(3000 + 601),
      'Failed ProgressTimeout',
    ],
  ])('%s → %s', (_, f, o, expected) => {
    const verdict = rolloutVerdict(f, o);
    expect(`${verdict.state} ${verdict.reason}`).toBe(expected);
  });

  it('says when to look again: the end of the settle period', () => {
    expect(rolloutVerdict(facts(), at(60)).recheckAt).toBe(T0 + 5_000 + 120_000);
  });

  it('counts the settle period from the change when the pods were Ready before it (a change that moves no pod)', () => {
    const before = facts({
      pods: [pod('a', { readySince: T0 - 3_600_000 }), pod('b', { readySince: T0 - 60_000 })],
    });
    expect(rolloutVerdict(before, at(60)).state).toBe('Progressing');
    expect(rolloutVerdict(before, at(60)).recheckAt).toBe(T0 + 120_000);
    expect(rolloutVerdict(before, at(120)).state).toBe('Succeeded');
  });

  it("quotes the scheduler's message", () => {
    const verdict = rolloutVerdict(
      facts({
        pods: [
          pod('b', {
            ready: false,
            unschedulableSince: T0,
            unschedulableMessage:
              "0/24 nodes are available: 24 node(s) didn't match Pod's node affinity/selector.",
          }),
        ],
      }),
      at(130),
    );
    expect(verdict.message).toContain("didn't match Pod's node affinity");
  });
});

const nodes = (name: string): Record<string, string> | undefined =>
  ({
    'spot-1': { 'karpenter.sh/capacity-type': 'spot', 'kubernetes.io/arch': 'amd64' },
    'eks-spot': { 'eks.amazonaws.com/capacityType': 'SPOT', 'kubernetes.io/arch': 'arm64' },
    'od-1': { 'karpenter.sh/capacity-type': 'on-demand', 'kubernetes.io/arch': 'amd64' },
  })[name];

function livePod(
  name: string,
  owner: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    metadata: { name, ownerReferences: [{ uid: owner, controller: true }], labels: {} },
    spec: { nodeName: 'spot-1' },
    status: {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-12-01T12:00:05Z' }],
      containerStatuses: [{ restartCount: 1 }, { restartCount: 2 }],
    },
    ...extra,
  };
}

describe('rollout facts from live objects', () => {
  it("a Deployment: new pods are the current revision's ReplicaSet's", () => {
    const workload = {
      metadata: {
        uid: 'd',
        generation: 2,
        annotations: { 'deployment.kubernetes.io/revision': '2' },
      },
      spec: { replicas: 2 },
      status: {
        observedGeneration: 2,
        replicas: 3,
        updatedReplicas: 2,
        availableReplicas: 2,
        conditions: [
          {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
            message: 'timed out',
          },
        ],
      },
    };
    const replicaSets = [
      {
        metadata: {
          uid: 'rs1',
          ownerReferences: [{ uid: 'd' }],
          annotations: { 'deployment.kubernetes.io/revision': '1' },
        },
      },
      {
        metadata: {
          uid: 'rs2',
          ownerReferences: [{ uid: 'd' }],
          annotations: { 'deployment.kubernetes.io/revision': '2' },
        },
      },
      {
        metadata: {
          uid: 'other',
          ownerReferences: [{ uid: 'x' }],
          annotations: { 'deployment.kubernetes.io/revision': '2' },
        },
      },
    ];
    const pods = [
      livePod('new', 'rs2'),
      livePod('old', 'rs1', { spec: { nodeName: 'od-1' } }),
      livePod('stranger', 'other'),
      {
        metadata: { name: 'pending', ownerReferences: [{ uid: 'rs2' }] },
        spec: {},
        status: {
          phase: 'Pending',
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message: 'no Spot capacity',
              lastTransitionTime: '2026-12-01T12:00:10Z',
            },
          ],
        },
      },
    ];
    const f = rolloutFacts('Deployment', { workload, pods, replicaSets, nodes });
    expect(f).toMatchObject({ observed: true, desired: 2, updated: 2, available: 2, total: 3 });
    expect(f.stalled).toEqual({ reason: 'ProgressDeadlineExceeded', message: 'timed out' });
    expect(f.pods).toEqual([
      {
        name: 'new',
        revision: 'new',
        phase: 'Running',
        ready: true,
        readySince: T0 + 5000,
        restarts: 3,
        capacityType: 'spot',
        arch: 'amd64',
      },
      {
        name: 'old',
        revision: 'old',
        phase: 'Running',
        ready: true,
        readySince: T0 + 5000,
        restarts: 3,
        capacityType: 'on-demand',
        arch: 'amd64',
      },
      {
        name: 'pending',
        revision: 'new',
        phase: 'Pending',
        ready: false,
        restarts: 0,
        unschedulableSince: T0 + 10_000,
        unschedulableMessage: 'no Spot capacity',
      },
    ]);
    expect(shareOnTarget(f, 'Spot')).toBe(1);
    expect(shareOnTarget(f, 'Arm64')).toBe(0);
  });

  it('a StatefulSet: the update revision; a DaemonSet: the template generation', () => {
    const sts = rolloutFacts('StatefulSet', {
      workload: {
        metadata: { uid: 's', generation: 1 },
        spec: { replicas: 1 },
        status: { updateRevision: 'db-2' },
      },
      pods: [
        livePod('db-0', 's', {
          metadata: {
            name: 'db-0',
            ownerReferences: [{ uid: 's' }],
            labels: { 'controller-revision-hash': 'db-2' },
          },
        }),
        livePod('db-1', 's', {
          metadata: {
            name: 'db-1',
            ownerReferences: [{ uid: 's' }],
            labels: { 'controller-revision-hash': 'db-1' },
          },
        }),
      ],
      nodes,
    });
    expect(sts.pods.map((p) => `${p.name}:${p.revision}`)).toEqual(['db-0:new', 'db-1:old']);
    const ds = rolloutFacts('DaemonSet', {
      workload: {
        metadata: { uid: 'ds', generation: 4 },
        spec: {},
        status: {
          desiredNumberScheduled: 3,
          updatedNumberScheduled: 1,
          numberAvailable: 3,
          currentNumberScheduled: 3,
        },
      },
      pods: [
        livePod('a', 'ds', {
          metadata: {
            name: 'a',
            ownerReferences: [{ uid: 'ds' }],
            labels: { 'pod-template-generation': '4' },
          },
        }),
      ],
      nodes,
    });
    expect(ds).toMatchObject({ desired: 3, updated: 1, available: 3, total: 3 });
    expect(ds.pods[0]?.revision).toBe('new');
  });

  it('a Rollout: observedGeneration as Argo writes it (a string), pods by pod hash, abort', () => {
    const f = rolloutFacts('Rollout', {
      workload: {
        metadata: { uid: 'r', generation: 3 },
        spec: { replicas: 1 },
        status: {
          observedGeneration: '3',
          phase: 'Degraded',
          abort: true,
          message: 'RolloutAborted: metric failed',
          currentPodHash: 'h2',
        },
      },
      pods: [
        livePod('n', 'rs', {
          metadata: { name: 'n', labels: { 'rollouts-pod-template-hash': 'h2' } },
        }),
        livePod('o', 'rs', {
          metadata: { name: 'o', labels: { 'rollouts-pod-template-hash': 'h1' } },
        }),
      ],
      nodes,
    });
    expect(f.observed).toBe(true);
    expect(f.stalled?.reason).toBe('RolloutAborted');
    expect(f.pods.map((p) => `${p.name}:${p.revision}`)).toEqual(['n:new', 'o:old']);
  });

  it('a CronJob: the first Job created since the change, and its pods', () => {
    const f = rolloutFacts('CronJob', {
      workload: { metadata: { uid: 'cj', generation: 2 }, spec: {}, status: {} },
      jobs: [
        {
          metadata: {
            uid: 'j1',
            name: 'report-1',
            creationTimestamp: '2026-12-01T11:00:00Z',
            ownerReferences: [{ uid: 'cj' }],
          },
          status: { succeeded: 1 },
        },
        {
          metadata: {
            uid: 'j2',
            name: 'report-2',
            creationTimestamp: '2026-12-01T12:01:00Z',
            ownerReferences: [{ uid: 'cj' }],
          },
          status: {
            conditions: [
              {
                type: 'Failed',
                status: 'True',
                message: 'Job has reached the specified backoff limit',
              },
            ],
          },
        },
      ],
      pods: [livePod('p2', 'j2'), livePod('p1', 'j1')],
      nodes,
      changedAt: T0,
    });
    expect(f.job).toEqual({
      name: 'report-2',
      startedAt: T0 + 60_000,
      succeeded: false,
      failed: 'Job has reached the specified backoff limit',
    });
    expect(f.pods.map((p) => `${p.name}:${p.revision}`)).toEqual(['p2:new', 'p1:old']);
  });
});
