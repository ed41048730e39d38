import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { factsFromObjects } from '../../recommender/facts-from-objects.ts';
import { groupOf } from '../../recommender/objects/index.ts';
import { canonicalDigest } from '../canonical.ts';
import { imageRequests } from '../images.ts';
import { comparableStatus, keptFor, projectionFor, storedStatusDigest } from './projections.ts';
import { RESOURCES } from './resources.ts';
import { SharedValues, valueHash } from './shared-values.ts';

/** What a ReplicaSet's pods have alike in their metadata, kept as it is. */
const OWNED = {
  labels: { app: 'web', 'pod-template-hash': '5d8f' },
  annotations: { 'prometheus.io/scrape': 'true' },
  ownerReferences: [
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs-1', controller: true },
  ],
};

/** A pod of ReplicaSet web-5d8f as the API server sends it: JSON text, parsed on its own. */
function podJson(name: string, node: string): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'shop',
        uid: `uid-${name}`,
        resourceVersion: '7',
        ...OWNED,
        managedFields: [{ manager: 'kubelet' }],
      },
      spec: {
        nodeName: node,
        containers: [
          { name: 'app', image: 'shop/web:1', resources: { requests: { cpu: '250m' } } },
        ],
        initContainers: [{ name: 'migrate', image: 'shop/migrate:1' }],
      },
      status: {
        phase: 'Running',
        podIP: '10.0.0.1',
        conditions: [
          { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-01T10:00:00Z' },
          { type: 'PodScheduled', status: 'True' },
        ],
      },
    }),
  ) as Record<string, unknown>;
}

describe('pod projections', () => {
  const project = projectionFor(RESOURCES.pods);

  it('keep what the recommender reads, as before', () => {
    // Through JSON: fields a pod lacks (generation) are kept as undefined, one shape for every
    // pod; what is defined must be exactly this.
    expect(JSON.parse(JSON.stringify(project(podJson('web-5d8f-a', 'node-1'))))).toStrictEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-5d8f-a',
        namespace: 'shop',
        resourceVersion: '7',
        ...OWNED,
      },
      spec: {
        nodeName: 'node-1',
        containers: [{ name: 'app', resources: { requests: { cpu: '250m' } } }],
        initContainers: [{ name: 'migrate' }],
      },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    });
  });

  it("share one frozen copy of what a ReplicaSet's pods repeat", () => {
    const a = project(podJson('web-5d8f-a', 'node-1'));
    const b = project(podJson('web-5d8f-b', 'node-2'));
    expect(b.metadata.labels).toBe(a.metadata.labels);
    expect(b.metadata.annotations).toBe(a.metadata.annotations);
    expect(b.metadata.ownerReferences).toBe(a.metadata.ownerReferences);
    expect(b.spec?.containers).toBe(a.spec?.containers);
    expect(b.spec?.initContainers).toBe(a.spec?.initContainers);
    expect(b.status).toBe(a.status);
    // What is shared cannot be changed through one pod for all the others.
    const labels: Record<string, string> = a.metadata.labels ?? {};
    const [owner] = a.metadata.ownerReferences ?? [];
    expect(() => {
      labels.app = 'other';
    }).toThrow(TypeError);
    expect(() => {
      if (owner) owner.name = 'other';
    }).toThrow(TypeError);
    expect(b.metadata.labels).toEqual({ app: 'web', 'pod-template-hash': '5d8f' });
    // Each pod's own fields stay its own.
    expect(a.spec?.nodeName).toBe('node-1');
    expect(b.spec?.nodeName).toBe('node-2');
  });

  it('share nothing between pods whose values differ', () => {
    const a = project(podJson('web-5d8f-a', 'node-1'));
    const other = podJson('web-5d8f-c', 'node-1');
    (other.status as { phase: string }).phase = 'Pending';
    expect(project(other).status).toEqual({
      phase: 'Pending',
      conditions: [{ type: 'Ready', status: 'True' }],
    });
    expect(a.status).toEqual({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
  });
});

describe('EndpointSlice projections', () => {
  it('keep the zone and conditions of each endpoint, each distinct endpoint once', () => {
    const project = projectionFor(RESOURCES.endpointslices);
    const slice = (name: string): Record<string, unknown> => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace: 'shop' },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['10.0.0.1'],
          conditions: { ready: true },
          zone: 'us-east-1a',
          nodeName: 'n-1',
          targetRef: { kind: 'Pod', namespace: 'shop', name: `${name}-pod`, uid: `${name}-uid` },
        },
        { addresses: ['10.0.0.2'], conditions: { ready: true } },
      ],
    });
    const a = project(JSON.parse(JSON.stringify(slice('web-1'))) as Record<string, unknown>);
    const b = project(JSON.parse(JSON.stringify(slice('web-2'))) as Record<string, unknown>);
    expect(a.endpoints).toStrictEqual([
      { conditions: { ready: true }, zone: 'us-east-1a' },
      { conditions: { ready: true } },
    ]);
    const endpoints = (o: typeof a): unknown[] => o.endpoints as unknown[];
    expect(endpoints(b)[0]).toBe(endpoints(a)[0]);
    expect(endpoints(b)[1]).toBe(endpoints(a)[1]);
    expect(endpoints(a)[1]).not.toBe(endpoints(a)[0]);
  });
});

describe('ReplicaSet projections', () => {
  const project = projectionFor(RESOURCES.replicasets);
  const replicaSet = (ownerKind?: string): Record<string, unknown> => ({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: 'web-5d8f',
      namespace: 'shop',
      ...(ownerKind
        ? {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: ownerKind, name: 'web', uid: 'u', controller: true },
            ],
          }
        : {}),
    },
    spec: {
      replicas: 3,
      template: { spec: { containers: [{ name: 'app', image: 'shop/web:1' }] } },
    },
    status: { replicas: 3, readyReplicas: 3, fullyLabeledReplicas: 3 },
  });

  it("keep only the metadata of a Deployment's or Rollout's ReplicaSets: they lead pods to it", () => {
    for (const owner of ['Deployment', 'Rollout']) {
      const projected = project(replicaSet(owner));
      expect(projected.metadata.ownerReferences?.[0]?.kind).toBe(owner);
      expect(projected.spec).toBeUndefined();
      expect(projected.status).toBeUndefined();
    }
  });

  it('keep the pod template of a ReplicaSet that is a workload itself', () => {
    for (const owner of [undefined, 'SomeOperatorKind']) {
      const projected = project(replicaSet(owner));
      expect(projected.spec).toEqual(replicaSet().spec);
      expect(projected.status).toEqual({ replicas: 3, readyReplicas: 3 });
    }
  });

  it("are not cached for a Deployment's or Rollout's old revision, which wants and has no pod", () => {
    const keep = keptFor(RESOURCES.replicasets);
    if (keep === undefined) throw new Error('ReplicaSets have no keep rule');
    const scaled = (
      ownerKind: string | undefined,
      replicas: number | undefined,
      running: number | undefined,
      terminating?: number,
    ): boolean => {
      const raw = replicaSet(ownerKind);
      raw.spec = replicas === undefined ? {} : { replicas };
      raw.status = {
        ...(running === undefined ? {} : { replicas: running }),
        ...(terminating === undefined ? {} : { terminatingReplicas: terminating }),
      };
      return keep(project(raw), raw);
    };
    for (const owner of ['Deployment', 'Rollout']) {
      expect(scaled(owner, 0, 0)).toBe(false);
      expect(scaled(owner, 0, undefined)).toBe(false);
      // Scaled down, its last pods not yet being deleted; the current revision; spec.replicas
      // defaults to 1.
      expect(scaled(owner, 0, 2)).toBe(true);
      // Scaled down, its last pod being deleted: status.replicas no longer counts it.
      expect(scaled(owner, 0, 0, 1)).toBe(true);
      expect(scaled(owner, 0, 0, 0)).toBe(false);
      expect(scaled(owner, 3, 3)).toBe(true);
      expect(scaled(owner, undefined, undefined)).toBe(true);
    }
    // A workload of its own, scaled to zero, still gets a recommendation.
    expect(scaled(undefined, 0, 0)).toBe(true);
    expect(scaled('SomeOperatorKind', 0, 0)).toBe(true);
    expect(keptFor(RESOURCES.deployments)).toBeUndefined();
  });
});

describe('WorkloadRecommendation projections', () => {
  const project = projectionFor(RESOURCES.workloadrecommendations);
  const ready = { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-01T10:00:00Z' };
  const applied = { outcome: 'Succeeded', actions: ['Spot'] };
  const wrec = (reason: string, appliedNow: unknown = applied): Record<string, unknown> => ({
    apiVersion: 'kopek.dev/v1alpha1',
    kind: 'WorkloadRecommendation',
    metadata: { name: 'deployment-web', namespace: 'shop' },
    spec: { targetRef: { kind: 'Deployment', name: 'web' }, approve: ['Spot'] },
    status: {
      monthlyCostUSD: '12.00',
      spot: { verdict: 'Recommended', reasons: [reason], patch: { a: 1 } },
      conditions: [ready],
      applied: appliedNow,
    },
  });

  it('keep spec, conditions and what Apply wrote, and a digest of the rest of the status', () => {
    const projected = project(wrec('3 replicas'));
    expect(projected.spec).toEqual(wrec('').spec);
    expect(projected.status).toEqual({ applied, conditions: [ready] });
    expect(storedStatusDigest(projected)).toBe(
      canonicalDigest(comparableStatus(wrec('3 replicas').status)),
    );
  });

  it('give a new digest when the recommendation changes, and the same when only Apply wrote', () => {
    const before = storedStatusDigest(project(wrec('3 replicas')));
    expect(storedStatusDigest(project(wrec('4 replicas')))).not.toBe(before);
    expect(storedStatusDigest(project(wrec('3 replicas', { outcome: 'InProgress' })))).toBe(before);
  });
});

describe('SharedValues', () => {
  it('forgets a value once no one holds it any more', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const shared = new SharedValues();
    const held = shared.share({ app: 'web' });
    for (let i = 0; i < 100; i++) shared.share({ app: `gone-${i}` });
    expect(shared.size).toBe(101);
    // Finalizers run in a later task, after a collection that found the values unreachable.
    for (let round = 0; round < 20 && shared.size > 1; round++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(shared.size).toBe(1);
    expect(shared.share({ app: 'web' })).toBe(held);
  });

  it('keep apart two values of the same hash', () => {
    // Two small values whose JSON hashes alike: a 30-bit hash repeats within ~10^5 of them.
    const seen = new Map<number, number>();
    let pair: [number, number] | undefined;
    for (let n = 0; pair === undefined; n++) {
      const hash = valueHash(JSON.stringify({ n }));
      const before = seen.get(hash);
      if (before !== undefined) pair = [before, n];
      seen.set(hash, n);
    }
    const shared = new SharedValues();
    const first = shared.share({ n: pair[0] });
    const second = shared.share({ n: pair[1] });
    expect(second).toStrictEqual({ n: pair[1] });
    expect(Object.isFrozen(second)).toBe(true);
    expect(shared.share({ n: pair[0] })).toBe(first);
    expect(shared.share({ n: pair[1] })).not.toBe(first);
    expect(shared.share({ n: pair[1] })).not.toBe(second);
    expect(shared.size).toBe(1);
  });
});

describe('workload projections', () => {
  const container = {
    name: 'app',
    image: 'shop/web:1',
    command: ['/web'],
    env: [{ name: 'LOG_LEVEL', value: 'info' }],
    resources: { requests: { cpu: '250m' } },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
    livenessProbe: { httpGet: { path: '/live', port: 8080 } },
    lifecycle: { preStop: { sleep: { seconds: 5 } } },
    ports: [{ containerPort: 8080, protocol: 'TCP' }],
    volumeMounts: [{ name: 'cache', mountPath: '/cache' }],
    securityContext: { runAsNonRoot: true },
    imagePullPolicy: 'IfNotPresent',
    terminationMessagePath: '/dev/termination-log',
  };
  const template = {
    metadata: { labels: { app: 'web' }, annotations: { a: 'b' }, creationTimestamp: null },
    spec: {
      containers: [container],
      initContainers: [{ ...container, name: 'sidecar', restartPolicy: 'Always' }],
      volumes: [
        { name: 'cache', emptyDir: { sizeLimit: '1Gi' } },
        { name: 'config', configMap: { name: 'web', items: [{ key: 'k', path: 'p' }] } },
        { name: 'data', persistentVolumeClaim: { claimName: 'web-data' } },
      ],
      imagePullSecrets: [{ name: 'registry' }],
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'web',
      securityContext: {},
    },
  };
  const kept = {
    name: 'app',
    image: 'shop/web:1',
    resources: { requests: { cpu: '250m' } },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 } },
    lifecycle: { preStop: { sleep: { seconds: 5 } } },
    ports: [{ containerPort: 8080, protocol: 'TCP' }],
  };
  const slimTemplate = {
    metadata: { labels: { app: 'web' }, annotations: { a: 'b' } },
    spec: {
      containers: [kept],
      initContainers: [{ ...kept, name: 'sidecar', restartPolicy: 'Always' }],
      volumes: [
        { name: 'cache', emptyDir: { sizeLimit: '1Gi' } },
        { name: 'config' },
        { name: 'data', persistentVolumeClaim: { claimName: 'web-data' } },
      ],
      imagePullSecrets: [{ name: 'registry' }],
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      terminationGracePeriodSeconds: 30,
    },
  };

  it("keep of a pod template what it is judged by and its images' pull secrets, not env or commands", () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'shop', uid: 'u-web' },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template },
    };
    const projected = projectionFor(RESOURCES.deployments)(structuredClone(deployment));
    expect(projected.metadata.uid).toBe('u-web');
    expect(projected.spec).toStrictEqual({
      replicas: 3,
      selector: { matchLabels: { app: 'web' } },
      template: slimTemplate,
    });
    expect(factsFromObjects([projected]).facts).toStrictEqual(factsFromObjects([deployment]).facts);
    expect(imageRequests([projected])).toStrictEqual(imageRequests([deployment]));
  });

  it("keep a CronJob's Job template whole but for its pod template, slimmed alike", () => {
    const cronJob = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'report', namespace: 'shop' },
      spec: {
        schedule: '0 * * * *',
        jobTemplate: { spec: { backoffLimit: 2, template } },
      },
    };
    const projected = projectionFor(RESOURCES.cronjobs)(structuredClone(cronJob));
    expect(projected.spec).toStrictEqual({
      schedule: '0 * * * *',
      jobTemplate: { spec: { backoffLimit: 2, template: slimTemplate } },
    });
    expect(factsFromObjects([projected]).facts).toStrictEqual(factsFromObjects([cronJob]).facts);
  });
});

describe('projections of a whole cluster', () => {
  it('give the facts the whole objects give (the commerce dump: every kind kopek caches, and pod overhead)', () => {
    const dump = parse(
      readFileSync(new URL('../../test/fixtures/commerce/dump.yaml', import.meta.url), 'utf8'),
    ) as { items: Record<string, unknown>[] };
    // What the dump lacks: a RuntimeClass's overhead on the pods of one namespace, and a
    // claim (grafana's, made unbound and classless) that only the default StorageClass tells
    // is EBS.
    for (const item of dump.items) {
      const metadata = item.metadata as { name: string; namespace?: string };
      const spec = item.spec as Record<string, unknown>;
      if (item.kind === 'Pod' && metadata.namespace === 'storefront')
        spec.overhead = { cpu: '250m', memory: '160Mi' };
      if (item.kind === 'PersistentVolumeClaim' && metadata.name === 'grafana') {
        delete spec.storageClassName;
        delete spec.volumeName;
      }
    }
    dump.items.push({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: {
        name: 'gp3',
        annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
      },
      provisioner: 'ebs.csi.aws.com',
      parameters: { type: 'gp3' },
      volumeBindingMode: 'WaitForFirstConsumer',
    });
    const cached = dump.items.flatMap((object) => {
      const type = Object.values(RESOURCES).find(
        (t) => t.kind === object.kind && t.group === groupOf(String(object.apiVersion)),
      );
      return type === undefined ? [] : [{ object, project: projectionFor(type) }];
    });
    // Every kind the dump has but ConfigMap, which kopek does not cache.
    expect(new Set(cached.map(({ object }) => object.kind)).size).toBe(18);
    const whole = factsFromObjects(cached.map(({ object }) => object));
    const projected = factsFromObjects(
      cached.map(({ object, project }) => project(structuredClone(object))),
    );
    expect(whole.facts.length).toBeGreaterThan(40);
    expect(projected.facts).toStrictEqual(whole.facts);
    const grafana = projected.facts.find((f) => f.name === 'grafana');
    expect(grafana?.template.volumes.map((v) => v.zonalVolume)).toContain(
      'StorageClass gp3 provisions EBS volumes (ebs.csi.aws.com), which live in one zone',
    );
    expect(projected.warnings).toStrictEqual(whole.warnings);
    expect(projected.skipped).toStrictEqual(whole.skipped);
    // And the registry is asked for the same images, with the same pull secrets (a
    // Deployment's ReplicaSets, whose templates are not kept, repeat its own).
    const images = (objects: unknown[]) =>
      new Set(imageRequests(objects).map((request) => JSON.stringify(request)));
    const asked = images(cached.map(({ object, project }) => project(structuredClone(object))));
    expect(asked.size).toBeGreaterThan(20);
    expect(asked).toStrictEqual(images(cached.map(({ object }) => object)));
  });
});
