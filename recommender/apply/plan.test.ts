import { describe, expect, it } from 'vitest';
import type { Optimization } from '../api/v1alpha1.ts';
import { canonicalJson } from '../canonical.ts';
import { DEFAULT_POLICY } from '../policy.ts';
import { CLUSTER, goodFacts, node, pod } from '../testing.ts';
import { mergePodSpec, mergeService } from './merge.ts';
import {
  annotationOperations,
  changesAnything,
  podSpecOperations,
  serviceOperations,
} from './operations.ts';
import { plannedState } from './plan.ts';
import { SNAPSHOT_PRICES } from '../pricing.ts';
import { recommend } from '../recommend.ts';
import { evaluateActions } from './savings.ts';
import {
  differences,
  parseState,
  podSpecOf,
  podSpecPointer,
  readPodPlacement,
  readServicePlacement,
  sameState,
  serializeState,
  type PlacementState,
} from './placement.ts';
import { applyJsonPatch, JsonPatchError } from './testing.ts';

const SPOT = { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['spot'] };
const TOLERATE_SPOT = {
  key: 'karpenter.sh/capacity-type',
  operator: 'Equal',
  value: 'spot',
  effect: 'NoSchedule',
};

/** A Deployment as the API server returns it, with the given pod spec fields. */
function deployment(podSpec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'checkout', namespace: 'shop', generation: 4 },
    spec: {
      replicas: 3,
      template: {
        metadata: { labels: { app: 'checkout' } },
        spec: {
          containers: [{ name: 'checkout', image: 'ghcr.io/acme/checkout:1.0' }],
          ...podSpec,
        },
      },
    },
  };
}

/** Pod specs of many shapes, to check that a revert restores each exactly. */
const SHAPES: Record<string, Record<string, unknown>> = {
  'nothing set': {},
  'a nodeSelector with other keys, in unsorted order': {
    nodeSelector: { team: 'shop', 'karpenter.sh/capacity-type': 'on-demand', disk: 'ssd' },
  },
  'tolerations with tolerationSeconds': {
    tolerations: [
      {
        key: 'node.kubernetes.io/not-ready',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 300,
      },
      { key: 'dedicated', operator: 'Equal', value: 'shop', effect: 'NoSchedule' },
    ],
  },
  'pod anti-affinity and preferred zone terms': {
    affinity: {
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 50,
            podAffinityTerm: {
              topologyKey: 'kubernetes.io/hostname',
              labelSelector: { matchLabels: { app: 'checkout' } },
            },
          },
        ],
      },
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 10,
            preference: {
              matchExpressions: [
                { key: 'topology.kubernetes.io/zone', operator: 'In', values: ['us-east-1a'] },
              ],
            },
          },
        ],
      },
    },
  },
  'required terms with matchFields and an on-demand pin': {
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [
                { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['on-demand'] },
                {
                  key: 'node.kubernetes.io/instance-type',
                  operator: 'NotIn',
                  values: ['t3.small'],
                },
              ],
              matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['bad-node'] }],
            },
          ],
        },
      },
    },
  },
  'an amd64 pin by the beta label and a zone spread': {
    nodeSelector: { 'beta.kubernetes.io/arch': 'amd64' },
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: { app: 'checkout' } },
        minDomains: 3,
      },
    ],
  },
};

const ACTION_SETS: Optimization[][] = [['Spot'], ['Arm64'], ['Spot', 'Arm64']];

function live(podSpec: Record<string, unknown>): PlacementState {
  return { podSpec: readPodPlacement(podSpec), services: [] };
}

describe('an apply and its revert', () => {
  const facts = goodFacts();
  for (const [shape, podSpec] of Object.entries(SHAPES)) {
    for (const actions of ACTION_SETS) {
      it(`${actions.join('+')} over ${shape}: applied, then restored exactly`, () => {
        const before = deployment(podSpec);
        const pointer = podSpecPointer('Deployment');
        const from = live(podSpecOf('Deployment', before) ?? {});
        const to = plannedState({ facts, actions, live: from });
        const apply = podSpecOperations(pointer, from.podSpec, to.podSpec);
        expect(changesAnything(apply)).toBe(true);
        const applied = applyJsonPatch(before, apply);
        expect(readPodPlacement(podSpecOf('Deployment', applied) ?? {})).toEqual(to.podSpec);
        // The revert is computed from the stored states, as after a restart.
        const previous = parseState(serializeState(from));
        const done = parseState(serializeState(to));
        if (!previous || !done) throw new Error('states do not round-trip');
        const reverted = applyJsonPatch(
          applied,
          podSpecOperations(pointer, done.podSpec, previous.podSpec),
        );
        // Equal content; the API server serializes fields in its own fixed order, so the bytes
        // it returns are equal too (checked against kube-apiserver in test/integration).
        expect(reverted).toEqual(before);
        expect(canonicalJson(reverted)).toBe(canonicalJson(before));
      });
    }
  }

  it('keeps what was in the live object but not in the cache (a person added a toleration)', () => {
    const added = { key: 'team', operator: 'Exists', effect: 'NoSchedule' };
    const to = plannedState({
      facts: goodFacts(),
      actions: ['Spot'],
      live: live({ tolerations: [added] }),
    });
    expect(to.podSpec.tolerations).toEqual([added, TOLERATE_SPOT]);
  });

  it('removes the on-demand pin and prefers Spot, as the suggested patch says', () => {
    const to = plannedState({
      facts: goodFacts(),
      actions: ['Spot'],
      live: live(SHAPES['a nodeSelector with other keys, in unsorted order'] ?? {}),
    });
    expect(to.podSpec.nodeSelector).toEqual({ team: 'shop', disk: 'ssd' });
    expect(JSON.stringify(to.podSpec.affinity)).toContain(JSON.stringify(SPOT));
  });

  it('moving to Spot spreads replicas that share one node over nodes, as the suggested patch says', () => {
    const facts = goodFacts({
      pods: [0, 1, 2].map((i) => pod(`p-${i}`, node('one', 'us-east-1a'))),
    });
    const to = plannedState({
      facts: { ...facts, template: { ...facts.template, topologySpread: [] } },
      actions: ['Spot'],
      live: live({}),
    });
    expect(to.podSpec.topologySpreadConstraints).toEqual([
      expect.objectContaining({ topologyKey: 'kubernetes.io/hostname', maxSkew: 1 }),
    ]);
  });

  it('never moves a workload at risk on Spot off it: only the approved actions are planned', () => {
    // One replica pinned to Spot: the suggested patch moves it to on-demand, Apply does not.
    const facts = goodFacts({ replicas: 1 });
    const pinned = { nodeSelector: { 'karpenter.sh/capacity-type': 'spot' } };
    const atRisk = { ...facts, template: { ...facts.template, ...pinned } };
    expect(recommend(atRisk).spot?.moveToOnDemandMonthlyCostUSD).toBeDefined();
    expect(evaluateActions(atRisk, SNAPSHOT_PRICES).actionable.Spot).toBe(false);
    const to = plannedState({ facts: atRisk, actions: ['Arm64'], live: live(pinned) });
    expect(to.podSpec.nodeSelector).toEqual(pinned.nodeSelector);
    expect(JSON.stringify(to.podSpec.affinity)).not.toContain('NotIn');
  });

  it('changes nothing when the live object already has the change', () => {
    const once = plannedState({ facts: goodFacts(), actions: ['Spot'], live: live({}) });
    const twice = plannedState({ facts: goodFacts(), actions: ['Spot'], live: once });
    expect(sameState(once, twice)).toBe(true);
    expect(
      changesAnything(podSpecOperations('/spec/template/spec', once.podSpec, twice.podSpec)),
    ).toBe(false);
  });

  it('a concurrent change to a tested field makes the whole patch fail, writing nothing', () => {
    const before = deployment({});
    const from = live({});
    const to = plannedState({ facts: goodFacts(), actions: ['Spot'], live: from });
    const operations = podSpecOperations('/spec/template/spec', from.podSpec, to.podSpec);
    const edited = applyJsonPatch(before, [
      { op: 'add', path: '/spec/template/spec/nodeSelector', value: { team: 'shop' } },
    ]);
    expect(() => applyJsonPatch(edited, operations)).toThrow(JsonPatchError);
  });

  it('CronJobs are patched in their job template', () => {
    expect(podSpecPointer('CronJob')).toBe('/spec/jobTemplate/spec/template/spec');
    expect(podSpecPointer('Rollout')).toBe('/spec/template/spec');
  });
});

describe('Services (cross-zone)', () => {
  const facts = {
    ...goodFacts(),
    policy: { ...DEFAULT_POLICY },
    cluster: { ...CLUSTER, kubernetesMinor: 35 },
  };
  const plan = {
    services: [{ name: 'checkout', patch: { spec: { trafficDistribution: 'PreferSameZone' } } }],
    spreadOverZones: false,
  };

  it('sets trafficDistribution and restores its absence', () => {
    const service = {
      metadata: { name: 'checkout', annotations: { team: 'shop' } },
      spec: { ports: [{ port: 80 }] },
    };
    const from: PlacementState = { podSpec: {}, services: [readServicePlacement(service)] };
    const to = plannedState({ facts, actions: ['CrossZone'], crossZone: plan, live: from });
    expect(to.services).toEqual([{ name: 'checkout', trafficDistribution: 'PreferSameZone' }]);
    const [change] = to.services;
    const [was] = from.services;
    if (!change || !was) throw new Error('no service');
    const applied = applyJsonPatch(
      service,
      serviceOperations(service.metadata.annotations, was, change),
    );
    expect(applied.spec).toMatchObject({ trafficDistribution: 'PreferSameZone' });
    const back = applyJsonPatch(
      applied,
      serviceOperations(service.metadata.annotations, change, was),
    );
    expect(back).toEqual(service);
    expect(differences(from, to)).toEqual(['Service checkout trafficDistribution']);
  });

  it('sets the topology-mode annotation on a Service without annotations, and removes it again', () => {
    const service = { metadata: { name: 'old' }, spec: {} };
    const was = readServicePlacement(service);
    const change = mergeService(was, {
      metadata: { annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } },
    });
    const applied = applyJsonPatch(service, serviceOperations(undefined, was, change));
    expect(applied.metadata).toEqual({
      name: 'old',
      annotations: { 'service.kubernetes.io/topology-mode': 'Auto' },
    });
    const back = applyJsonPatch(
      applied,
      serviceOperations(
        (applied.metadata as { annotations?: Record<string, string> }).annotations,
        change,
        was,
      ),
    );
    // The API server drops the empty annotations map when it stores the object.
    expect(back.metadata).toEqual({ name: 'old', annotations: {} });
  });
});

describe('strategic merge of the suggested patch', () => {
  it.each([
    [
      'nodeSelector null deletes a key',
      { nodeSelector: { a: '1', b: '2' } },
      { nodeSelector: { a: null } },
      { nodeSelector: { b: '2' } },
    ],
    [
      'nodeSelector emptied is removed',
      { nodeSelector: { a: '1' } },
      { nodeSelector: { a: null } },
      {},
    ],
    [
      'affinity merges maps: podAntiAffinity kept, required replaced',
      {
        affinity: {
          podAntiAffinity: { x: 1 },
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ a: 1 }] },
          },
        },
      },
      {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ b: 2 }] },
          },
        },
      },
      {
        affinity: {
          podAntiAffinity: { x: 1 },
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ b: 2 }] },
          },
        },
      },
    ],
    [
      'required null deletes it; an emptied affinity goes',
      {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ a: 1 }] },
          },
        },
      },
      { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: null } } },
      {},
    ],
    [
      'tolerations are replaced whole',
      { tolerations: [{ key: 'a' }] },
      { tolerations: [{ key: 'a' }, { key: 'b' }] },
      { tolerations: [{ key: 'a' }, { key: 'b' }] },
    ],
    [
      'topology spreads merge by topologyKey',
      { topologySpreadConstraints: [{ topologyKey: 'kubernetes.io/hostname', maxSkew: 2 }] },
      { topologySpreadConstraints: [{ topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1 }] },
      {
        topologySpreadConstraints: [
          { topologyKey: 'kubernetes.io/hostname', maxSkew: 2 },
          { topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1 },
        ],
      },
    ],
  ])('%s', (_, liveSpec, patch, expected) => {
    expect(mergePodSpec(readPodPlacement(liveSpec), patch)).toEqual(expected);
  });
});

describe('stored states', () => {
  it.each([
    ['not JSON', '{'],
    ['not a state', '{"podSpec":[],"services":[]}'],
    ['an unknown field', '{"podSpec":{"containers":[]},"services":[]}'],
    ['a Service without a name', '{"podSpec":{},"services":[{}]}'],
  ])('refuses %s', (_, text) => {
    expect(parseState(text)).toBeUndefined();
  });

  it('annotation operations create the map only after testing it is absent', () => {
    expect(annotationOperations(undefined, 'kopek.dev/applied', undefined, 'x')).toEqual([
      { op: 'test', path: '/metadata/annotations', value: null },
      { op: 'add', path: '/metadata/annotations', value: { 'kopek.dev/applied': 'x' } },
    ]);
    expect(annotationOperations({ a: 'b' }, 'kopek.dev/applied', undefined, 'x')).toEqual([
      { op: 'test', path: '/metadata/annotations/kopek.dev~1applied', value: null },
      { op: 'add', path: '/metadata/annotations/kopek.dev~1applied', value: 'x' },
    ]);
  });
});
