import { describe, expect, it } from 'vitest';
import type { AppliedChange, Optimization } from '../api/v1alpha1.ts';
import type { ResolvedPolicy, WorkloadFacts } from '../facts.ts';
import { DEFAULT_POLICY } from '../policy.ts';
import { goodFacts } from '../testing.ts';
import {
  concurrencyRefusal,
  decide,
  liveRefusal,
  rolloutInProgress,
  type DecideInput,
} from './eligibility.ts';
import { gitOpsManager, withGitOpsNote } from './gitops.ts';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const APPLY: ResolvedPolicy = {
  ...DEFAULT_POLICY,
  name: 'apply-shop',
  mode: 'Apply',
  apply: { ...DEFAULT_POLICY.apply, actions: ['Spot', 'Arm64'] },
};
const ALL: Record<Optimization, boolean> = { Spot: true, Arm64: true, CrossZone: true };

function input(
  overrides: Omit<Partial<DecideInput>, 'facts'> & { facts?: Partial<WorkloadFacts> } = {},
): DecideInput {
  const { facts, ...rest } = overrides;
  return {
    facts: goodFacts({ policy: APPLY, ...facts }),
    actionable: ALL,
    approved: ['Spot'],
    applyEnabled: true,
    generation: 7,
    now: NOW,
    ...rest,
  };
}

function last(outcome: AppliedChange['outcome'], at: string, generation = 7): AppliedChange {
  return {
    actions: ['Spot'],
    appliedAt: at,
    updatedAt: at,
    outcome,
    workloadGeneration: generation,
  };
}

function code(i: DecideInput): string {
  const decision = decide(i);
  return 'refusal' in decision ? decision.refusal.code : `apply ${decision.actions.join('+')}`;
}

describe('what Apply mode may do', () => {
  it.each<[string, DecideInput, string]>([
    ['approved and recommended → applies it', input(), 'apply Spot'],
    [
      'both approved → both, in one change',
      input({ approved: ['Arm64', 'Spot'] }),
      'apply Spot+Arm64',
    ],
    ['the policy only recommends', input({ facts: { policy: DEFAULT_POLICY } }), 'NotApplyMode'],
    ['nobody approved yet', input({ approved: [] }), 'NotApproved'],
    [
      'no approval needed',
      input({
        approved: [],
        facts: { policy: { ...APPLY, apply: { ...APPLY.apply, requireApproval: false } } },
      }),
      'apply Spot+Arm64',
    ],
    [
      'approved but not in spec.apply.actions',
      input({ approved: ['CrossZone'] }),
      'ActionNotAllowed',
    ],
    [
      'approved but no longer actionable',
      input({ actionable: { ...ALL, Spot: false } }),
      'VerdictNotActionable',
    ],
    [
      'approved, applied by kopek, and so no longer recommended: done, quietly',
      input({
        actionable: { ...ALL, Spot: false },
        last: last('Succeeded', '2026-12-01T11:50:00Z'),
      }),
      'AlreadyApplied',
    ],
    [
      'rolled back on this spec, and meanwhile no longer recommended: still held',
      input({
        actionable: { ...ALL, Spot: false },
        last: last('RolledBack', '2026-12-01T11:50:00Z'),
      }),
      'HeldAfterFailure',
    ],
    [
      'rolled back on an older spec, and no longer recommended',
      input({
        actionable: { ...ALL, Spot: false },
        last: last('RolledBack', '2026-12-01T10:00:00Z', 6),
      }),
      'VerdictNotActionable',
    ],
    [
      'rolled back on an older spec 10 minutes ago, and not actionable now: cooling down',
      input({
        actionable: { ...ALL, Spot: false },
        last: last('RolledBack', '2026-12-01T11:50:00Z', 6),
      }),
      'CoolingDown',
    ],
    [
      'another action approved 10 minutes after kopek applied Spot, not actionable now: cooling down',
      input({
        approved: ['Spot', 'Arm64'],
        actionable: { ...ALL, Spot: false, Arm64: false },
        last: last('Succeeded', '2026-12-01T11:50:00Z'),
      }),
      'CoolingDown',
    ],
    [
      'the same, 2 hours later',
      input({
        approved: ['Spot', 'Arm64'],
        actionable: { ...ALL, Spot: false, Arm64: false },
        last: last('Succeeded', '2026-12-01T10:00:00Z'),
      }),
      'VerdictNotActionable',
    ],
    [
      'nothing actionable and nothing approved',
      input({ approved: [], actionable: { Spot: false, Arm64: false, CrossZone: false } }),
      'NothingToApply',
    ],
    ['kopek runs without --enable-apply', input({ applyEnabled: false }), 'ApplyDisabled'],
    [
      'Argo CD tracks it',
      input({
        facts: {
          annotations: { 'argocd.argoproj.io/tracking-id': 'shop:apps/Deployment:shop/checkout' },
        },
      }),
      'GitOpsManaged',
    ],
    [
      'Flux manages it, and the policy allows it',
      input({
        facts: {
          labels: { app: 'checkout', 'kustomize.toolkit.fluxcd.io/name': 'shop' },
          policy: { ...APPLY, apply: { ...APPLY.apply, allowGitOpsManaged: true } },
        },
      }),
      'apply Spot',
    ],
    ['a DaemonSet gets arm64 only', input({ facts: { kind: 'DaemonSet' } }), 'NotApproved'],
    [
      'a DaemonSet approved for arm64',
      input({ facts: { kind: 'DaemonSet' }, approved: ['Arm64'] }),
      'apply Arm64',
    ],
    ['a Job is never changed in place', input({ facts: { kind: 'Job' } }), 'KindNotSupported'],
    [
      'a StatefulSet the Prometheus operator owns, approved: never patched directly',
      input({
        facts: {
          kind: 'StatefulSet',
          owner: { kind: 'Prometheus', name: 'k8s', apiVersion: 'monitoring.coreos.com/v1' },
        },
      }),
      'OwnedByController',
    ],
    [
      'a Deployment of a custom resource, no approval needed: never patched directly',
      input({
        approved: [],
        facts: {
          owner: { kind: 'Database', name: 'orders' },
          policy: { ...APPLY, apply: { ...APPLY.apply, requireApproval: false } },
        },
      }),
      'OwnedByController',
    ],
    [
      'rolled back on this same spec',
      input({ last: last('RolledBack', '2026-11-01T00:00:00Z') }),
      'HeldAfterFailure',
    ],
    [
      'failed on this spec; the spec has changed since',
      input({ last: last('Failed', '2026-11-01T00:00:00Z', 6) }),
      'apply Spot',
    ],
    ['cleared by a person', input({ last: last('Cleared', '2026-12-01T11:59:00Z') }), 'apply Spot'],
    [
      'changed 10 minutes ago: cooling down',
      input({ last: last('Succeeded', '2026-12-01T11:50:00Z') }),
      'CoolingDown',
    ],
    [
      'changed 2 hours ago',
      input({ last: last('Succeeded', '2026-12-01T10:00:00Z') }),
      'apply Spot',
    ],
  ])('%s', (_, i, expected) => {
    expect(code(i)).toBe(expected);
  });

  it('says which verdict keeps an approved action from being applied', () => {
    const decision = decide(
      input({
        approved: ['Spot', 'Arm64'],
        actionable: { ...ALL, Spot: false, Arm64: false },
        verdicts: { Spot: 'AlreadyOptimized', Arm64: 'Unknown' },
      }),
    );
    expect('refusal' in decision && decision.refusal.message).toContain(
      'Spot and Arm64 are approved, but no longer recommended (Spot AlreadyOptimized and Arm64 Unknown)',
    );
  });

  it('tells a person how to approve', () => {
    const decision = decide(input({ approved: [] }));
    expect('refusal' in decision && decision.refusal.message).toContain(
      `kubectl patch wrec deployment-checkout -n shop --type=merge -p '{"spec":{"approve":["Spot","Arm64"]}}'`,
    );
  });

  it('says when the cooldown ends, to look again then', () => {
    const decision = decide(input({ last: last('Succeeded', '2026-12-01T11:50:00Z') }));
    expect('refusal' in decision && decision.refusal.retryAt).toBe(
      Date.parse('2026-12-01T12:50:00Z'),
    );
  });

  it('keeps the usual states quiet (no Event for every workload of a recommend-only policy)', () => {
    for (const i of [
      input({ facts: { policy: DEFAULT_POLICY } }),
      input({
        actionable: { ...ALL, Spot: false },
        last: last('Succeeded', '2026-12-01T11:50:00Z'),
      }),
      input({ approved: [], actionable: { Spot: false, Arm64: false, CrossZone: false } }),
    ]) {
      const decision = decide(i);
      expect('refusal' in decision && decision.refusal.quiet).toBe(true);
    }
    const notApproved = decide(input({ approved: [] }));
    expect('refusal' in notApproved && notApproved.refusal.quiet).toBe(false);
  });
});

function liveDeployment(
  status: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    metadata: { name: 'checkout', generation: 3, ...extra },
    spec: { replicas: 3, template: { metadata: { labels: { app: 'checkout' } }, spec: {} } },
    status: {
      observedGeneration: 3,
      replicas: 3,
      updatedReplicas: 3,
      availableReplicas: 3,
      ...status,
    },
  };
}

const PDB = (allowed: number, app = 'checkout'): Record<string, unknown> => ({
  metadata: { name: 'checkout' },
  spec: { selector: { matchLabels: { app } } },
  status: { disruptionsAllowed: allowed },
});

describe('what only the live objects tell', () => {
  it.each<[string, Parameters<typeof liveRefusal>[0], string | undefined]>([
    [
      'a settled Deployment',
      { kind: 'Deployment', workload: liveDeployment({}), pdbs: [PDB(1)] },
      undefined,
    ],
    [
      'its controller has not seen the spec',
      { kind: 'Deployment', workload: liveDeployment({ observedGeneration: 2 }), pdbs: [] },
      'RolloutInProgress',
    ],
    [
      'old pods still around',
      { kind: 'Deployment', workload: liveDeployment({ replicas: 4 }), pdbs: [] },
      'RolloutInProgress',
    ],
    [
      'a replica unavailable',
      { kind: 'Deployment', workload: liveDeployment({ availableReplicas: 2 }), pdbs: [] },
      'RolloutInProgress',
    ],
    [
      'paused',
      {
        kind: 'Deployment',
        workload: { ...liveDeployment({}), spec: { replicas: 3, paused: true } },
        pdbs: [],
      },
      'RolloutPaused',
    ],
    [
      'its PDB allows no disruption now',
      { kind: 'Deployment', workload: liveDeployment({}), pdbs: [PDB(0)] },
      'DisruptionBudgetExhausted',
    ],
    [
      "another workload's PDB at 0",
      { kind: 'Deployment', workload: liveDeployment({}), pdbs: [PDB(0, 'other')] },
      undefined,
    ],
    [
      'owned by an operator',
      {
        kind: 'Deployment',
        workload: liveDeployment(
          {},
          { ownerReferences: [{ kind: 'Prometheus', name: 'k8s', uid: 'u', controller: true }] },
        ),
        pdbs: [],
      },
      'OwnedByController',
    ],
    [
      'a StatefulSet updated OnDelete',
      {
        kind: 'StatefulSet',
        workload: {
          ...liveDeployment({ currentRevision: 'a', updateRevision: 'a' }),
          spec: { replicas: 3, updateStrategy: { type: 'OnDelete' } },
        },
        pdbs: [],
      },
      'UpdateStrategyBlocksRollout',
    ],
    [
      'a Rollout mid-canary',
      {
        kind: 'Rollout',
        workload: liveDeployment({ observedGeneration: '3', phase: 'Paused' }),
        pdbs: [],
      },
      'RolloutPaused',
    ],
    [
      'a healthy Rollout',
      {
        kind: 'Rollout',
        workload: liveDeployment({ observedGeneration: '3', phase: 'Healthy' }),
        pdbs: [],
      },
      undefined,
    ],
    [
      'a Rollout whose template lives elsewhere',
      {
        kind: 'Rollout',
        workload: {
          ...liveDeployment({ phase: 'Healthy' }),
          spec: { workloadRef: { kind: 'Deployment', name: 'x' } },
        },
        pdbs: [],
      },
      'TemplateFromWorkloadRef',
    ],
    [
      'a suspended CronJob',
      {
        kind: 'CronJob',
        workload: {
          metadata: { generation: 1 },
          spec: { suspend: true, jobTemplate: {} },
          status: {},
        },
        pdbs: [],
      },
      'RolloutPaused',
    ],
  ])('%s', (_, i, expected) => {
    expect(liveRefusal(i)?.code).toBe(expected);
  });

  it('a DaemonSet rolls while not every scheduled pod is updated', () => {
    expect(
      rolloutInProgress('DaemonSet', {
        metadata: { generation: 2 },
        status: {
          observedGeneration: 2,
          desiredNumberScheduled: 5,
          updatedNumberScheduled: 4,
          numberAvailable: 5,
        },
      }),
    ).toBe('4 of 5 pods are updated');
  });

  it('counts rollouts cluster-wide against the policy', () => {
    expect(concurrencyRefusal(0, 1)).toBeUndefined();
    expect(concurrencyRefusal(1, 1)?.code).toBe('MaxConcurrentReached');
    expect(concurrencyRefusal(2, 3)).toBeUndefined();
  });
});

describe('GitOps', () => {
  it.each([
    [
      {},
      { 'argocd.argoproj.io/tracking-id': 'x' },
      'Argo CD (annotation argocd.argoproj.io/tracking-id)',
    ],
    [{ 'argocd.argoproj.io/instance': 'shop' }, {}, 'Argo CD (label argocd.argoproj.io/instance)'],
    [{ 'helm.toolkit.fluxcd.io/name': 'shop' }, {}, 'Flux (label helm.toolkit.fluxcd.io/name)'],
    [
      { 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/managed-by': 'Helm' },
      {},
      undefined,
    ],
  ])('%j %j → %s', (labels, annotations, expected) => {
    expect(gitOpsManager(labels, annotations)).toBe(expected);
  });

  it('says so in the Ready condition of a workload Apply mode would change', () => {
    const ready = {
      type: 'Ready',
      status: 'True',
      reason: 'Recommended',
      message: 'Spot change is recommended.',
    } as const;
    const managed = goodFacts({
      policy: APPLY,
      labels: { 'kustomize.toolkit.fluxcd.io/name': 'shop' },
    });
    expect(withGitOpsNote(ready, managed).message).toBe(
      'Spot change is recommended. Managed by Flux (label kustomize.toolkit.fluxcd.io/name): kopek does not patch it in Apply mode; commit the suggested patch (status.suggestedPatch) to Git instead.',
    );
    expect(withGitOpsNote(ready, { ...managed, policy: DEFAULT_POLICY })).toEqual(ready);
    expect(withGitOpsNote(ready, goodFacts({ policy: APPLY }))).toEqual(ready);
  });
});
