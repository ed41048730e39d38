import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { indexObjects } from './index.ts';
import { ownerChainKeys } from './owners.ts';
import { deployment, NODES, pod, podSpec } from './testing.ts';

/** web's ReplicaSet, which its Deployment owns. */
const WEB_REPLICA_SET = {
  apiVersion: 'apps/v1',
  kind: 'ReplicaSet',
  metadata: {
    name: 'web-abc',
    namespace: 'shop',
    ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }],
  },
  spec: { template: {} },
};

describe('owner chains', () => {
  it('ties pods to Deployments through their ReplicaSet, with or without the ReplicaSet in the dump', () => {
    const objects = [
      ...NODES,
      deployment('web'),
      deployment('api'),
      WEB_REPLICA_SET,
      pod('web-abc-1', 'shop', 'n-a', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod('web-abc-2', 'shop', 'n-b', { kind: 'ReplicaSet', name: 'web-abc' }),
      pod(
        'api-7d9f-1',
        'shop',
        'n-c',
        { kind: 'ReplicaSet', name: 'api-7d9f' },
        { 'pod-template-hash': '7d9f' },
      ),
    ];
    const { facts, warnings } = factsFromObjects(objects);
    expect(warnings).toEqual([]);
    expect(facts.map((f) => `${f.kind}/${f.name}:${f.pods.map((p) => p.name).join(',')}`)).toEqual([
      'Deployment/api:api-7d9f-1',
      'Deployment/web:web-abc-1,web-abc-2',
    ]);
    const web = facts.find((f) => f.name === 'web');
    expect(web?.pods[0]).toMatchObject({
      cpuRequestCores: 0.5,
      memoryRequestBytes: 1024 ** 3,
      ready: true,
      node: {
        zone: 'us-east-1a',
        instanceType: 'm6i.xlarge',
        capacityType: 'on-demand',
        arch: 'amd64',
        cpuCores: 4,
      },
    });
    expect(web?.pods[1]?.node?.capacityType).toBe('spot');
  });

  it('ties a pod whose ReplicaSet is missing to the kind its hash label names, when a Deployment and a Rollout share a name', () => {
    const rollout = {
      ...deployment('web'),
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Rollout',
    };
    const owner = (name: string): { kind: string; name: string } => ({ kind: 'ReplicaSet', name });
    const objects = [
      ...NODES,
      deployment('web'),
      rollout,
      pod('web-6f7c-1', 'shop', 'n-a', owner('web-6f7c'), { 'rollouts-pod-template-hash': '6f7c' }),
      pod('web-5d8f-1', 'shop', 'n-b', owner('web-5d8f'), { 'pod-template-hash': '5d8f' }),
    ];
    const { facts } = factsFromObjects(objects);
    expect(facts.map((f) => `${f.kind}/${f.name}:${f.pods.map((p) => p.name).join(',')}`)).toEqual([
      'Deployment/web:web-5d8f-1',
      'Rollout/web:web-6f7c-1',
    ]);
  });

  it('names the keys a pod’s workload may read: its owner, and the parents guessed from its name only while the owner is missing', () => {
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'report-29000', namespace: 'shop' },
    };
    const webPod = pod(
      'web-abc-1',
      'shop',
      'n-a',
      { kind: 'ReplicaSet', name: 'web-abc' },
      { 'pod-template-hash': 'abc' },
    );
    const jobPod = pod('report-29000-x', 'shop', 'n-a', { kind: 'Job', name: 'report-29000' });
    const without = indexObjects([webPod, jobPod]);
    const withOwners = indexObjects([webPod, jobPod, WEB_REPLICA_SET, job]);
    const web = without.byKey.get('Pod/shop/web-abc-1');
    const report = without.byKey.get('Pod/shop/report-29000-x');
    if (web === undefined || report === undefined) throw new Error('pods not indexed');
    const guessed = ['ReplicaSet/shop/web-abc', 'Deployment/shop/web', 'Rollout/shop/web'];
    expect(ownerChainKeys(web)).toEqual(guessed);
    expect(ownerChainKeys(web, without)).toEqual(guessed);
    expect(ownerChainKeys(web, withOwners)).toEqual(['ReplicaSet/shop/web-abc']);
    expect(ownerChainKeys(report, without)).toEqual([
      'Job/shop/report-29000',
      'CronJob/shop/report',
    ]);
    expect(ownerChainKeys(report, withOwners)).toEqual(['Job/shop/report-29000']);
  });

  it('ties pods to CronJobs through their Job, with or without the Job in the dump', () => {
    const cron = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'report', namespace: 'batch' },
      spec: {
        schedule: '@daily',
        jobTemplate: {
          spec: {
            backoffLimit: 2,
            template: { metadata: { labels: { app: 'report' } }, spec: podSpec() },
          },
        },
      },
    };
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'report-100',
        namespace: 'batch',
        ownerReferences: [{ kind: 'CronJob', name: 'report', controller: true }],
      },
      spec: { template: { spec: podSpec() } },
      status: { startTime: '2026-07-01T02:00:00Z', completionTime: '2026-07-01T02:10:00Z' },
    };
    const objects = [
      ...NODES,
      cron,
      job,
      pod('report-100-x', 'batch', 'n-a', { kind: 'Job', name: 'report-100' }),
      pod('report-200-y', 'batch', 'n-b', { kind: 'Job', name: 'report-200' }),
    ];
    const { facts } = factsFromObjects(objects);
    expect(facts).toHaveLength(1);
    expect(facts[0]).toMatchObject({
      kind: 'CronJob',
      name: 'report',
      job: { backoffLimit: 2, observedRunSeconds: 600 },
    });
    expect(facts[0]?.pods.map((p) => p.name)).toEqual(['report-100-x', 'report-200-y']);
  });

  it('reads the owner of a workload another controller owns: the controlling one, or the only one', () => {
    const owned = (name: string, owners: Record<string, unknown>[]) => {
      const d = deployment(name);
      return { ...d, metadata: { ...(d.metadata as object), ownerReferences: owners } };
    };
    const objects = [
      owned('db', [
        { apiVersion: 'acme.io/v1', kind: 'Database', name: 'orders', uid: 'u', controller: true },
      ]),
      owned('gc-only', [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'holder', uid: 'u' }]),
      owned('two', [
        { apiVersion: 'v1', kind: 'ConfigMap', name: 'a', uid: 'u' },
        { apiVersion: 'v1', kind: 'ConfigMap', name: 'b', uid: 'v' },
      ]),
      deployment('web'),
    ];
    const { facts } = factsFromObjects(objects);
    expect(Object.fromEntries(facts.map((f) => [f.name, f.owner]))).toEqual({
      db: { kind: 'Database', name: 'orders', apiVersion: 'acme.io/v1' },
      'gc-only': { kind: 'ConfigMap', name: 'holder', apiVersion: 'v1' },
      two: undefined,
      web: undefined,
    });
  });
});
