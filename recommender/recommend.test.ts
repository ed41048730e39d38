import { describe, expect, it } from 'vitest';
import type { WorkloadRecommendationStatus } from './api/v1alpha1.ts';
import { SNAPSHOT_PRICES } from './pricing.ts';
import {
  readyCondition,
  recommend,
  recommendationName,
  toWorkloadRecommendation,
} from './recommend.ts';
import { ZONES, goodFacts, node, pod, schemaProblems, service, template } from './testing.ts';

describe('recommend', () => {
  it('puts verdicts, money on the combined target, placement, prices and the patch together', () => {
    const status = recommend(goodFacts());
    expect(schemaProblems(status)).toEqual([]);
    // 3 pods × 35.04 (m6i.xlarge, 1 vCPU + 4 GiB each). Spot alone saves 57.82, arm64 alone
    // 15.77 — but both together are priced on m7g.xlarge Spot: 3 × 23.72208 = 71.17, not 73.59.
    expect(status).toMatchObject({
      monthlyCostUSD: '105.12',
      potentialMonthlySavingsUSD: '71.17',
      pricing: { source: 'Snapshot', region: 'us-east-1', asOf: '2026-07-20T13:44:30Z' },
      placement: {
        replicas: 3,
        zones: [...ZONES],
        instanceTypes: ['m6i.xlarge'],
        capacityTypes: ['on-demand'],
        architectures: ['amd64'],
      },
      spot: { verdict: 'Recommended', monthlySavingsUSD: '57.82' },
      arm64: { verdict: 'Recommended', monthlySavingsUSD: '15.77' },
      crossZone: { verdict: 'Recommended', monthlySavingsUSD: '0.00' },
    });
    expect(status.suggestedPatch?.podTemplate).toBeDefined();
    expect(status.suggestedPatch?.services).toEqual([
      { name: 'checkout', patch: { spec: { trafficDistribution: 'PreferSameZone' } } },
    ]);
    expect(status.policy).toBeUndefined();
  });

  it('adds measured cross-zone savings to the compute savings (a separate bill)', () => {
    const facts = goodFacts({
      services: [service('checkout', { measuredCrossZoneBytesPerMonth: 1000 * 1024 ** 3 })],
    });
    expect(recommend(facts).potentialMonthlySavingsUSD).toBe('91.17');
  });

  it('counts only what the patch does: a blocked Spot move leaves the arm64 savings', () => {
    const facts = goodFacts({ template: template({ volumes: [{ name: 'h', kind: 'hostPath' }] }) });
    const status = recommend(facts);
    expect(status.spot?.verdict).toBe('NotRecommended');
    expect(status.potentialMonthlySavingsUSD).toBe(status.arm64?.monthlySavingsUSD);
  });

  it('is deterministic', () => {
    expect(JSON.stringify(recommend(goodFacts()))).toBe(JSON.stringify(recommend(goodFacts())));
  });

  it("takes another price book (the operator's live prices)", () => {
    const live = { ...SNAPSHOT_PRICES, source: 'Live' as const, asOf: '2026-11-20T10:00:00Z' };
    expect(recommend(goodFacts(), live).pricing).toEqual({
      source: 'Live',
      region: 'us-east-1',
      asOf: '2026-11-20T10:00:00Z',
    });
  });

  it('names the SavingsPolicy in force', () => {
    const facts = goodFacts();
    expect(
      recommend({ ...facts, policy: { ...facts.policy, name: 'apply-stateless-prod' } }).policy,
    ).toBe('apply-stateless-prod');
  });

  it('places pods with unknown capacity type as on-demand', () => {
    const facts = goodFacts({
      pods: [pod('p', { ...node('n', 'us-east-1a'), capacityType: undefined } as never)],
    });
    expect(recommend(facts).placement?.capacityTypes).toEqual(['on-demand']);
  });
});

describe('readyCondition', () => {
  it('says what is recommended', () => {
    expect(readyCondition(recommend(goodFacts()))).toEqual({
      type: 'Ready',
      status: 'True',
      reason: 'Recommended',
      message: 'Spot, arm64 and cross-zone changes are recommended.',
    });
  });

  it('says what only needs the suggested patch, and what is unknown', () => {
    const status: WorkloadRecommendationStatus = {
      spot: {
        verdict: 'Possible',
        score: 50,
        monthlySavingsUSD: '1.00',
        reasons: [{ code: 'OnDemandPinned', message: 'm', effect: 'Requires' }],
      },
      arm64: {
        verdict: 'Unknown',
        score: 30,
        monthlySavingsUSD: '0.00',
        reasons: [{ code: 'ImagePlatformsUnknown', message: 'm', effect: 'Info' }],
      },
      crossZone: { verdict: 'NotApplicable', score: 0, monthlySavingsUSD: '0.00' },
    };
    expect(readyCondition(status)).toMatchObject({
      reason: 'Recommended',
      message:
        'Spot is possible with the suggested patch. Unknown for arm64: a fact is missing (see the reasons).',
    });
  });

  it('says a workload runs on Spot at risk, with the patch that moves it off and its cost', () => {
    // One replica on a Spot node: SingleReplica blocks Spot, yet it runs there.
    const facts = goodFacts({
      replicas: 1,
      pods: [pod('p-0', node('n-0', 'us-east-1a', 'm6i.xlarge', { capacityType: 'spot' }))],
      template: template({ nodeSelector: { 'karpenter.sh/capacity-type': 'spot' } }),
    });
    const status = recommend(facts);
    expect(schemaProblems(status)).toEqual([]);
    expect(status.spot).toMatchObject({
      verdict: 'NotRecommended',
      moveToOnDemandMonthlyCostUSD: '19.27',
    });
    const ready = readyCondition(status);
    expect(ready.reason).toBe('AtRisk');
    expect(ready.message).toMatch(
      /^It runs on Spot, which is not recommended for it .*moves it to on-demand for 19\.27 USD more a month\./,
    );
    expect(ready.message).not.toContain('No change is recommended');
    // The Spot pin goes and every required term keeps it off Spot nodes, under either label.
    expect(status.suggestedPatch?.podTemplate).toMatchObject({
      spec: {
        nodeSelector: { 'karpenter.sh/capacity-type': null },
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    { key: 'karpenter.sh/capacity-type', operator: 'NotIn', values: ['spot'] },
                    { key: 'eks.amazonaws.com/capacityType', operator: 'NotIn', values: ['SPOT'] },
                  ],
                },
              ],
            },
          },
        },
      },
    });
  });

  it('requires a spread over nodes before Spot when every replica shares one node; the patch adds it', () => {
    const facts = goodFacts({
      template: template({ topologySpread: [] }),
      pods: [0, 1, 2].map((i) => pod(`p-${i}`, node('one', 'us-east-1a'))),
    });
    const status = recommend(facts);
    expect(status.spot?.verdict).toBe('Possible');
    const onOne = status.spot?.reasons?.find((r) => r.code === 'ReplicasOnOneNode');
    expect(onOne?.effect).toBe('Requires');
    expect(onOne?.message).toMatch(/on node one.*The suggested patch does this\.$/);
    expect(readyCondition(status).message).toContain('Spot is possible with the suggested patch.');
    expect(status.suggestedPatch?.podTemplate).toMatchObject({
      spec: {
        topologySpreadConstraints: [
          {
            maxSkew: 1,
            topologyKey: 'kubernetes.io/hostname',
            whenUnsatisfiable: 'ScheduleAnyway',
            labelSelector: { matchLabels: facts.selector },
          },
        ],
      },
    });
    expect(Number(status.potentialMonthlySavingsUSD)).toBeGreaterThan(0);
  });

  it('says a workload runs on arm64 at risk, with the patch that moves it to amd64', () => {
    const facts = goodFacts({
      pods: ZONES.map((z, i) => pod(`p-${i}`, node(`n-${i}`, z, 'm7g.xlarge', { arch: 'arm64' }))),
      template: template({ nodeSelector: { 'kubernetes.io/arch': 'arm64' } }),
      imagePlatforms: { 'ghcr.io/acme/checkout:1.0': { platforms: ['linux/amd64'] } },
    });
    const status = recommend(facts);
    expect(schemaProblems(status)).toEqual([]);
    expect(status.arm64).toMatchObject({
      verdict: 'NotRecommended',
      moveToAmd64MonthlyCostUSD: '21.02',
    });
    const ready = readyCondition(status);
    expect(ready.reason).toBe('AtRisk');
    expect(ready.message).toContain(
      'It runs on arm64 nodes, which an image lacks (see the arm64 reasons): the suggested patch moves it to amd64 nodes for 21.02 USD more a month.',
    );
    expect(status.suggestedPatch?.podTemplate).toMatchObject({
      spec: { nodeSelector: { 'kubernetes.io/arch': 'amd64' } },
    });
  });

  it('says when there is nothing to do', () => {
    const facts = goodFacts({ kind: 'DaemonSet', services: [] });
    expect(readyCondition(recommend(facts))).toMatchObject({
      reason: 'NothingToDo',
      message: 'No change is recommended.',
    });
  });
});

describe('the WorkloadRecommendation object', () => {
  it('is named <kind>-<name>, owned by the workload, and carries the Ready condition', () => {
    const facts = goodFacts();
    const obj = toWorkloadRecommendation(facts, recommend(facts), '2026-11-20T10:00:00Z');
    expect(obj).toMatchObject({
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'WorkloadRecommendation',
      metadata: {
        name: 'deployment-checkout',
        namespace: 'shop',
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'Deployment', name: 'checkout', uid: facts.uid },
        ],
      },
      spec: { targetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'checkout' } },
      status: {
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-11-20T10:00:00Z' }],
      },
    });
    expect(obj.metadata.ownerReferences?.[0]).not.toHaveProperty('blockOwnerDeletion');
  });

  it('uses the API group of each kind', () => {
    for (const [kind, apiVersion] of [
      ['CronJob', 'batch/v1'],
      ['Job', 'batch/v1'],
      ['Rollout', 'argoproj.io/v1alpha1'],
      ['StatefulSet', 'apps/v1'],
    ] as const) {
      const facts = goodFacts({ kind });
      expect(toWorkloadRecommendation(facts, recommend(facts), 'x').spec.targetRef.apiVersion).toBe(
        apiVersion,
      );
    }
  });

  it('names the owner of a workload another controller owns, in the reasons and the condition', () => {
    const facts = goodFacts({
      kind: 'StatefulSet',
      owner: { kind: 'Prometheus', name: 'k8s', apiVersion: 'monitoring.coreos.com/v1' },
    });
    const obj = toWorkloadRecommendation(facts, recommend(facts), 'x');
    const owner = 'Prometheus shop/k8s (monitoring.coreos.com/v1)';
    for (const result of [obj.status?.spot, obj.status?.arm64]) {
      expect(result?.reasons?.find((r) => r.code === 'ChangeThroughOwner')?.message).toContain(
        `make the suggested change in ${owner}'s spec`,
      );
    }
    expect(obj.status?.conditions?.[0]?.message).toContain(`Make the change in ${owner}`);
  });

  it('leaves out the ownerReference without a uid', () => {
    const facts = { ...goodFacts(), uid: undefined } as unknown as ReturnType<typeof goodFacts>;
    expect(
      toWorkloadRecommendation(facts, recommend(facts), 'x').metadata.ownerReferences,
    ).toBeUndefined();
  });
});

describe('recommendationName', () => {
  it('is <kind>-<name> in lower case', () => {
    expect(recommendationName('Deployment', 'checkout')).toBe('deployment-checkout');
    expect(recommendationName('StatefulSet', 'orders-db')).toBe('statefulset-orders-db');
  });

  it('cuts names over 253 characters and ends them with a hash, distinct and valid', () => {
    const long = `a${'b'.repeat(249)}`;
    const one = recommendationName('Deployment', `${long}1`);
    const two = recommendationName('Deployment', `${long}2`);
    expect(one).toHaveLength(253);
    expect(one).not.toBe(two);
    expect(one).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
    expect(recommendationName('Deployment', `${long}1`)).toBe(one);
  });

  it('never leaves a dash or dot before the hash', () => {
    const name = `${'x'.repeat(230)}.${'-'.repeat(30)}y`;
    expect(recommendationName('Job', name)).toMatch(/^[a-z0-9.-]*[a-z0-9]-[0-9a-f]{10}$/);
    expect(recommendationName('Job', name)).not.toMatch(/[-.]-[0-9a-f]{10}$/);
  });
});
