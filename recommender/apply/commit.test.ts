import { describe, expect, it } from 'vitest';
import type { Optimization } from '../api/v1alpha1.ts';
import type { WorkloadFacts } from '../facts.ts';
import { SNAPSHOT_PRICES } from '../pricing.ts';
import { CLUSTER, goodFacts } from '../testing.ts';
import { planCommit, type CommitInput } from './commit.ts';
import { readPodPlacement } from './placement.ts';
import { plannedState } from './plan.ts';
import { evaluateActions } from './savings.ts';

type Obj = Record<string, unknown>;

const PINNED = { nodeSelector: { 'kubernetes.io/arch': 'amd64', team: 'shop' } };

function deployment(podSpec: Obj): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'checkout', namespace: 'shop' },
    spec: { template: { spec: { containers: [{ name: 'c', image: 'x' }], ...podSpec } } },
  };
}

/** Argo CD manages it, and its policy only recommends: Apply mode would never patch it. */
const GITOPS: WorkloadFacts = goodFacts({
  labels: { app: 'checkout', 'argocd.argoproj.io/instance': 'shop' },
});

function commit(overrides: Partial<CommitInput> = {}) {
  return planCommit({
    facts: GITOPS,
    prices: SNAPSHOT_PRICES,
    workload: deployment(PINNED),
    services: new Map(),
    ...overrides,
  });
}

/** Why there is nothing to commit; fails when there is something. */
function why(plan: ReturnType<typeof planCommit>): string {
  if (!('nothing' in plan))
    throw new Error(`expected nothing to change, got ${plan.actions.join(', ')}`);
  return plan.nothing;
}

function changed(plan: ReturnType<typeof planCommit>) {
  if ('nothing' in plan) throw new Error(`expected a change, got: ${plan.nothing}`);
  return plan;
}

describe('planCommit: the change a person commits for a workload Apply mode leaves alone', () => {
  it('takes the actions Apply mode would, without the policy, approval and GitOps gates', () => {
    expect(GITOPS.policy.mode).toBe('Recommend');
    const plan = changed(commit());
    const actionable = evaluateActions(GITOPS, SNAPSHOT_PRICES).actionable;
    const expected = (['Spot', 'Arm64'] as Optimization[]).filter((a) => actionable[a]);
    expect(expected).toEqual(['Spot', 'Arm64']);
    expect(plan.actions).toEqual(expected);
  });

  it('plans exactly the state Apply mode would patch, from the dumped fields', () => {
    const plan = changed(commit());
    const live = { podSpec: readPodPlacement(PINNED), services: [] };
    expect(plan.previous).toEqual(live);
    expect(plan.planned).toEqual(plannedState({ facts: GITOPS, actions: plan.actions, live }));
    // The amd64 pin goes, the other key stays: the dump, not the cache, is what is changed.
    expect(plan.planned.podSpec.nodeSelector).toEqual({ team: 'shop' });
  });

  it('--action narrows the actions, and the money is that of those actions only', () => {
    const both = changed(commit());
    const arm64 = changed(commit({ actions: ['Arm64'] }));
    expect(arm64.actions).toEqual(['Arm64']);
    expect(JSON.stringify(arm64.planned)).not.toContain('capacity');
    expect(arm64.savings.map((s) => s.action)).toEqual(['Arm64']);
    expect(both.savings.map((s) => s.action)).toEqual(['Spot', 'Arm64']);
  });

  it('says which verdict keeps a requested action from being taken', () => {
    const single = goodFacts({ replicas: 1 });
    expect(evaluateActions(single, SNAPSHOT_PRICES).actionable.Spot).toBe(false);
    const plan = commit({ facts: single, actions: ['Spot'] });
    expect(why(plan)).toMatch(/^nothing to change: Spot is \w+$/);
  });

  it('leaves out the actions that are not actionable and takes the others', () => {
    const single = goodFacts({ replicas: 1 });
    const plan = changed(commit({ facts: single }));
    expect(plan.actions).toEqual(['Arm64']);
    expect(JSON.stringify(plan.planned)).not.toContain('capacity');
  });

  it('takes only the actions Apply mode makes on the kind (DaemonSets: Arm64)', () => {
    const daemonSet = { ...GITOPS, kind: 'DaemonSet' as const };
    expect(commit({ facts: daemonSet, actions: ['Spot', 'CrossZone'] })).toEqual({
      nothing: 'kopek changes only Arm64 on a DaemonSet',
    });
    const plan = commit({ facts: daemonSet });
    expect(JSON.stringify(plan)).not.toMatch(/Spot|capacity|CrossZone/);
  });

  it('leaves a workload another controller owns to its owner, and says so', () => {
    const owned = { ...GITOPS, owner: { kind: 'Application', name: 'shop' } };
    expect(why(commit({ facts: owned }))).toContain('its owner');
  });

  it('says when the dumped object already does what the actions change', () => {
    const first = changed(commit());
    const again = commit({ workload: deployment(first.planned.podSpec) });
    expect(why(again)).toContain('already does');
  });

  describe('CrossZone', () => {
    const facts = { ...GITOPS, cluster: { ...CLUSTER, kubernetesMinor: 35 } };
    const evaluation = evaluateActions(facts, SNAPSHOT_PRICES);
    const service = { metadata: { name: 'checkout', namespace: 'shop' }, spec: {} };
    const services = new Map([['checkout', service]]);

    it('is actionable on the test workload', () => {
      expect(evaluation.actionable.CrossZone).toBe(true);
      expect(evaluation.crossZone.services.map((s) => s.name)).toEqual(['checkout']);
    });

    it('includes the Service change Apply mode makes', () => {
      const plan = changed(commit({ facts, services, actions: ['CrossZone'] }));
      expect(plan.actions).toEqual(['CrossZone']);
      expect(plan.planned.services).toEqual([
        { name: 'checkout', trafficDistribution: 'PreferSameZone' },
      ]);
      expect(changed(commit({ facts, services })).actions).toContain('CrossZone');
    });
  });
});
