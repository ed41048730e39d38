import { describe, expect, it } from 'vitest';
import { factsFromObjects } from './facts-from-objects.ts';
import type { Obj } from './objects/read.ts';
import { deployment, NODES, nodeObj, pod } from './objects/testing.ts';

describe('facts from a kubectl dump', () => {
  it('skips system namespaces and kopek.dev/ignore, and says so', () => {
    const { facts, skipped } = factsFromObjects([
      deployment('coredns', 'kube-system'),
      deployment('exp', 'shop', { annotations: { 'kopek.dev/ignore': 'true' } }),
      deployment('web'),
    ]);
    expect(facts.map((f) => f.name)).toEqual(['web']);
    expect(skipped).toEqual([
      { namespace: 'kube-system', kind: 'Deployment', name: 'coredns', reason: 'system namespace' },
      {
        namespace: 'shop',
        kind: 'Deployment',
        name: 'exp',
        reason: 'annotated kopek.dev/ignore: "true"',
      },
    ]);
  });

  it('warns, per object, about what it cannot use, and never throws', () => {
    const objects = [
      'just a string',
      { kind: 'Deployment' },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { namespace: 'x' } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'no-template', namespace: 'x' },
        spec: {},
      },
      deployment('bad-cpu', 'shop', {
        spec: {
          containers: [
            {
              name: 'app',
              image: 'nginx',
              resources: { requests: { cpu: 'lots', memory: '1Gi' } },
            },
          ],
        },
      }),
      pod('stray', 'shop', 'nowhere', { kind: 'ReplicaSet', name: 'gone-123' }),
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'bare', namespace: 'shop' },
        spec: { nodeName: 'n-a', containers: [] },
        status: { phase: 'Running' },
      },
      nodeObj('n-a', 'us-east-1a'),
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: 'bad-cpu-5d8f',
          namespace: 'shop',
          ownerReferences: [{ kind: 'Deployment', name: 'bad-cpu', controller: true }],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'bad-cpu-5d8f-a',
          namespace: 'shop',
          ownerReferences: [{ kind: 'ReplicaSet', name: 'bad-cpu-5d8f', controller: true }],
        },
        spec: {
          nodeName: 'n-a',
          initContainers: [
            { name: 'setup', image: 'x', resources: { requests: { memory: '1Gb' } } },
          ],
          containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: 'lots' } } }],
        },
        status: { phase: 'Running' },
      },
    ];
    const { facts, warnings } = factsFromObjects(objects);
    expect(facts.map((f) => f.name)).toEqual(['bad-cpu']);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'object 0: not a Kubernetes object; skipped',
        'an object without apiVersion is not a Kubernetes object; skipped',
        'a Deployment without metadata.name; skipped',
        'Deployment x/no-template: it has no pod template (spec.template); skipped',
        'Deployment shop/bad-cpu container app: cpu request "lots" is not a quantity; counted as 0',
        'Pod shop/bad-cpu-5d8f-a init container setup: memory request "1Gb" is not a quantity; counted as 0',
        'Pod shop/bad-cpu-5d8f-a container app: cpu request "lots" is not a quantity; counted as 0',
        'Pod shop/stray runs on node nowhere, which is not in the input; it is not priced',
        'ignored 2 ConfigMap objects: kopek does not read that kind',
        expect.stringMatching(/^1 pod has no owning workload .*Pod shop\/bare/),
      ]),
    );
  });

  it('reports replicas: "3" (and other non-integers) as invalid instead of counting 1', () => {
    const quoted = deployment('quoted', 'shop');
    (quoted.spec as Obj).replicas = '3';
    const fractional = deployment('fractional', 'shop');
    (fractional.spec as Obj).replicas = 2.5;
    const { facts, warnings } = factsFromObjects([
      quoted,
      fractional,
      deployment('fine', 'shop', { replicas: 2 }),
      nodeObj('n-a', 'us-east-1a'),
    ]);
    expect(facts.map((f) => `${f.name}:${f.replicas}`)).toEqual(['fine:2']);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'Deployment shop/quoted: spec.replicas is "3", not a whole number, so it is invalid; skipped',
        'Deployment shop/fractional: spec.replicas is 2.5, not a whole number, so it is invalid; skipped',
      ]),
    );
  });

  it('reads known kinds from their own API group only, and lists the others as ignored', () => {
    const foreign = { ...deployment('lookalike', 'shop'), apiVersion: 'foo.example.com/v9' };
    const { facts, warnings } = factsFromObjects([
      foreign,
      deployment('real', 'shop'),
      { ...deployment('old', 'shop'), apiVersion: 'extensions/v1beta1' },
      nodeObj('n-a', 'us-east-1a'),
    ]);
    expect(facts.map((f) => f.name)).toEqual(['real']);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'ignored 1 Deployment object of foo.example.com/v9: kopek reads that kind from another API group only',
        'ignored 1 Deployment object of extensions/v1beta1: kopek reads that kind from another API group only',
      ]),
    );
  });

  it('looks image platforms up under any spelling of the reference', () => {
    const objects = [deployment('web')];
    const { facts } = factsFromObjects(objects, {
      imagePlatforms: { 'docker.io/library/nginx:1.27': { platforms: ['linux/arm64'] } },
    });
    expect(facts[0]?.imagePlatforms).toEqual({ 'nginx:1.27': { platforms: ['linux/arm64'] } });
  });

  it('applies the SavingsPolicy with the highest priority that matches', () => {
    const policy = (name: string, priority: number, spec: Obj) => ({
      apiVersion: 'kopek.dev/v1alpha1',
      kind: 'SavingsPolicy',
      metadata: { name },
      spec: { priority, ...spec },
    });
    const objects = [
      deployment('web', 'payments'),
      deployment('web', 'shop'),
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'shop', labels: { environment: 'production' } },
      },
      policy('everywhere', 0, {}),
      policy('prod', 100, {
        namespaceSelector: { matchLabels: { environment: 'production' } },
        spot: { minReplicas: 3 },
      }),
      policy('no-spot-for-payments', 500, {
        namespaceSelector: {
          matchExpressions: [
            { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['payments'] },
          ],
        },
        spot: { enabled: false },
      }),
    ];
    const byNs = Object.fromEntries(
      factsFromObjects(objects).facts.map((f) => [f.namespace, f.policy]),
    );
    expect(byNs.payments).toMatchObject({
      name: 'no-spot-for-payments',
      spot: { enabled: false, minReplicas: 2 },
    });
    expect(byNs.shop).toMatchObject({
      name: 'prod',
      spot: { enabled: true, minReplicas: 3, maxTerminationGracePeriodSeconds: 90 },
    });
  });

  it('is deterministic whatever the input order', () => {
    const objects = [
      ...NODES,
      deployment('b'),
      deployment('a'),
      pod('a-1', 'shop', 'n-a', { kind: 'ReplicaSet', name: 'a-h' }, { 'pod-template-hash': 'h' }),
    ];
    expect(JSON.stringify(factsFromObjects(objects))).toBe(
      JSON.stringify(factsFromObjects([...objects].reverse())),
    );
  });
});
