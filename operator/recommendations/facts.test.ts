import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { factsFromObjects } from '../../recommender/facts-from-objects.ts';
import type { ImagePlatformsFact } from '../../recommender/facts.ts';
import { deployment, nodeObj, pod } from '../../recommender/objects/testing.ts';
import { ClusterCache } from '../cache.ts';
import { imageRequests, type ImagePlatformSource, type ImageRequest } from '../images.ts';
import type { Projected } from '../kube/projections.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { FakeKube } from '../testing/fake-kube.ts';
import { memoryLog } from '../testing/harness.ts';
import { ManualClock } from '../testing/manual-clock.ts';
import { WorkloadFactsCache } from './facts.ts';
import { workloadKey } from './keys.ts';

type Obj = Record<string, unknown>;

/** A registry whose answers a test changes. */
class TableRegistry implements ImagePlatformSource {
  readonly answers = new Map<string, ImagePlatformsFact>();
  resolve(requests: readonly ImageRequest[]): Promise<Record<string, ImagePlatformsFact>> {
    const out: Record<string, ImagePlatformsFact> = {};
    for (const { image } of requests) out[image] = this.answers.get(image) ?? { platforms: [] };
    return Promise.resolve(out);
  }
}

interface World {
  kube: FakeKube;
  cache: ClusterCache;
  facts: WorkloadFactsCache;
  registry: TableRegistry;
  metrics: Metrics;
  log: ReturnType<typeof memoryLog>;
}

let world: World | undefined;
afterEach(async () => {
  await world?.cache.stop();
  world = undefined;
});

/** The cache on the in-memory API telling its changes to the facts, as the controller does. */
async function startWorld(): Promise<World> {
  const kube = new FakeKube();
  const metrics = createMetrics();
  const log = memoryLog('warn');
  const facts = new WorkloadFactsCache();
  const cache: ClusterCache = new ClusterCache({
    client: kube,
    log,
    metrics,
    clock: new ManualClock(),
    onChange: (resource, object, previous) => {
      facts.changes.markChanged(cache, resource, object, previous);
    },
  });
  await cache.start();
  await cache.waitForSync();
  world = { kube, cache, facts, registry: new TableRegistry(), metrics, log };
  return world;
}

/** A rebuild that also brings the workloads with a Service up to date with the client pods. */
function rebuild(w: World): ReturnType<WorkloadFactsCache['rebuild']> {
  w.facts.changes.markClients();
  return w.facts.rebuild(w.cache, {
    imagePlatforms: w.registry,
    metrics: w.metrics,
    log: w.log,
  });
}

/** Every workload's facts built from scratch over the same cache: what incremental must equal. */
function fullBuild(w: World): Promise<Map<string, unknown>> {
  const objects: Projected[] = [];
  for (const name of Object.keys(RESOURCES) as ResourceName[])
    if (name !== 'workloadrecommendations') objects.push(...w.cache.list(name));
  return buildAll(w, objects);
}

/** Every workload's facts built over the objects as the API holds them: what `kopek analyze` finds. */
function buildFromApi(w: World): Promise<Map<string, unknown>> {
  const objects: Obj[] = [];
  for (const name of Object.keys(RESOURCES) as ResourceName[])
    if (name !== 'workloadrecommendations') objects.push(...w.kube.objects(RESOURCES[name]));
  return buildAll(w, objects);
}

async function buildAll(w: World, objects: readonly Obj[]): Promise<Map<string, unknown>> {
  const built = factsFromObjects(objects, {
    imagePlatforms: await w.registry.resolve(imageRequests(objects)),
    ...(w.cache.kubernetesMinor !== undefined ? { kubernetesMinor: w.cache.kubernetesMinor } : {}),
  });
  return new Map(built.facts.map((f) => [workloadKey(f.namespace, f.kind, f.name), f]));
}

async function expectEqualToFull(w: World): Promise<void> {
  const full = await fullBuild(w);
  const incremental = new Map([...full.keys()].map((key) => [key, w.facts.get(key)]));
  expect(incremental).toEqual(full);
  expect(w.facts.size).toBe(full.size);
}

// The universe the random changes move in: small, so that changes collide.
const NAMESPACES = ['a', 'b'];
const NODES = ['n0', 'n1', 'n2', 'n3'];
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const APPS = ['d0', 'd1', 'd2', 'd3'];
const IMAGES = ['img/x:1', 'img/y:1', 'img/z:1'];
const nsOfApp = (app: string): string => NAMESPACES[Number(app.slice(1)) % 2] ?? 'a';

type Change =
  | {
      type: 'node';
      name: string;
      zone: string;
      arm: boolean;
      spot: boolean;
      /** The pool's taint (arm64 or Spot), which the cluster's facts keep when every node has it. */
      tainted: boolean;
      /** An EKS node group's capacity label instead of Karpenter's. */
      eks: boolean;
      kubelet: string;
      remove: boolean;
    }
  | { type: 'namespace'; name: string; team: string; remove: boolean }
  | {
      type: 'deployment';
      app: string;
      replicas: number;
      tier: string;
      image: string;
      ignore: boolean;
      remove: boolean;
    }
  | {
      type: 'replicaset';
      app: string;
      hash: string;
      /** 0: an old revision, which the cache leaves out (keptFor). */
      replicas: number;
      remove: boolean;
    }
  | {
      type: 'pod';
      name: string;
      owner: string; // an app's ReplicaSet, the StatefulSet, the DaemonSet, or a CronJob's Job
      hash: string;
      /** Whether it carries its pod-template-hash label (without, its Deployment is not guessed). */
      labelled?: boolean;
      node: string | undefined;
      ready: boolean;
      done: boolean;
      cpu: number;
      remove: boolean;
    }
  | { type: 'statefulset'; replicas: number; remove: boolean }
  | { type: 'daemonset'; image: string; remove: boolean }
  | { type: 'cronjob'; remove: boolean }
  | { type: 'job'; name: string; owner: string; seconds: number; remove: boolean }
  | { type: 'service'; name: string; app: string; tier: string | undefined; remove: boolean }
  | { type: 'slice'; service: string; zones: string[]; remove: boolean }
  | {
      type: 'pdb';
      name: string;
      app: string;
      maxUnavailable: number;
      byExpression?: boolean;
      remove: boolean;
    }
  | { type: 'hpa'; name: string; app: string; min: number; remove: boolean }
  | { type: 'policy'; team: string; spot: boolean; remove: boolean }
  | { type: 'image'; image: string; answer: number };

/** One change in five is a delete. */
const remove = fc.integer({ min: 0, max: 4 }).map((n) => n === 0);
const podChange = fc.record({
  type: fc.constant('pod' as const),
  name: fc.constantFrom('p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'),
  owner: fc.constantFrom(...APPS, 'sts', 'ds', 'job'),
  hash: fc.constantFrom('h1', 'h2'),
  labelled: fc.boolean(),
  node: fc.option(fc.constantFrom(...NODES, 'ghost'), { nil: undefined }),
  ready: fc.boolean(),
  done: fc.boolean(),
  cpu: fc.constantFrom(100, 250, 500),
  remove,
});

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({
    type: fc.constant('node' as const),
    name: fc.constantFrom(...NODES),
    zone: fc.constantFrom(...ZONES),
    arm: fc.boolean(),
    spot: fc.boolean(),
    tainted: fc.boolean(),
    eks: fc.boolean(),
    kubelet: fc.constantFrom('v1.32.4-eks-1', 'v1.33.1-eks-1'),
    remove,
  }),
  fc.record({
    type: fc.constant('namespace' as const),
    name: fc.constantFrom(...NAMESPACES),
    team: fc.constantFrom('x', 'y'),
    remove: fc.constant(false),
  }),
  fc.record({
    type: fc.constant('deployment' as const),
    app: fc.constantFrom(...APPS),
    replicas: fc.integer({ min: 1, max: 4 }),
    tier: fc.constantFrom('web', 'api'),
    image: fc.constantFrom(...IMAGES),
    ignore: fc.boolean(),
    remove,
  }),
  fc.record({
    type: fc.constant('replicaset' as const),
    app: fc.constantFrom(...APPS),
    hash: fc.constantFrom('h1', 'h2'),
    replicas: fc.constantFrom(0, 1),
    remove,
  }),
  ...[1, 2, 3].map(() => podChange), // pods change most often
  fc.record({
    type: fc.constant('statefulset' as const),
    replicas: fc.integer({ min: 1, max: 3 }),
    remove,
  }),
  fc.record({ type: fc.constant('daemonset' as const), image: fc.constantFrom(...IMAGES), remove }),
  fc.record({ type: fc.constant('cronjob' as const), remove }),
  fc.record({
    type: fc.constant('job' as const),
    // Jobs that start at once: which one a CronJob reads depends on their order. A CronJob
    // reads the Jobs its name owns, whatever their names ('nightly' guesses no CronJob).
    name: fc.constantFrom('cron-100', 'cron-200', 'nightly'),
    owner: fc.constantFrom('cron', 'other'),
    seconds: fc.integer({ min: 10, max: 900 }),
    remove,
  }),
  fc.record({
    type: fc.constant('service' as const),
    name: fc.constantFrom('s0', 's1', 's2'),
    app: fc.constantFrom(...APPS),
    tier: fc.option(fc.constantFrom('web', 'api'), { nil: undefined }),
    remove,
  }),
  fc.record({
    type: fc.constant('slice' as const),
    service: fc.constantFrom('s0', 's1', 's2'),
    zones: fc.array(fc.constantFrom(...ZONES), { maxLength: 4 }),
    remove,
  }),
  fc.record({
    type: fc.constant('pdb' as const),
    name: fc.constantFrom('b0', 'b1'),
    app: fc.constantFrom(...APPS),
    maxUnavailable: fc.integer({ min: 0, max: 2 }),
    // Without matchLabels a budget is a candidate for every workload of its namespace.
    byExpression: fc.boolean(),
    remove,
  }),
  fc.record({
    type: fc.constant('hpa' as const),
    // Two HPAs on one target: the first in the cache's order wins.
    name: fc.constantFrom('h0', 'h1'),
    app: fc.constantFrom(...APPS),
    min: fc.integer({ min: 1, max: 5 }),
    remove,
  }),
  fc.record({
    type: fc.constant('policy' as const),
    team: fc.constantFrom('x', 'y'),
    spot: fc.boolean(),
    remove,
  }),
  fc.record({
    type: fc.constant('image' as const),
    image: fc.constantFrom(...IMAGES),
    answer: fc.integer({ min: 0, max: 2 }),
  }),
);

let revisions = 0;

/** Services and slices live in the namespace of the app their number names. */
const nsOfService = (name: string): string => NAMESPACES[Number(name.slice(1)) % 2] ?? 'a';

function template(app: string, tier: string, image: string): Obj {
  return {
    metadata: { labels: { app, tier } },
    spec: {
      containers: [
        { name: 'app', image, resources: { requests: { cpu: '250m', memory: '256Mi' } } },
      ],
    },
  };
}

/** A pod of the universe: its namespace follows its owner's. */
function podOf(c: Extract<Change, { type: 'pod' }>): { namespace: string; object: Obj } {
  const [namespace, owner, labels] =
    c.owner === 'sts'
      ? ['a', { kind: 'StatefulSet', name: 'sts' }, { app: 'sts' }]
      : c.owner === 'ds'
        ? ['b', { kind: 'DaemonSet', name: 'ds' }, { app: 'ds' }]
        : c.owner === 'job'
          ? ['a', { kind: 'Job', name: 'cron-100' }, {}]
          : [
              nsOfApp(c.owner),
              { kind: 'ReplicaSet', name: `${c.owner}-${c.hash}` },
              { app: c.owner, ...(c.labelled === false ? {} : { 'pod-template-hash': c.hash }) },
            ];
  const object = pod(c.name, namespace, c.node ?? '', owner, labels, {
    containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: `${c.cpu}m` } } }],
  });
  if (c.node === undefined) delete (object.spec as Obj).nodeName;
  object.status = {
    phase: c.done ? 'Succeeded' : 'Running',
    conditions: [{ type: 'Ready', status: c.ready ? 'True' : 'False' }],
  };
  return { namespace, object };
}

function apply(w: World, c: Change): void {
  const { kube } = w;
  const put = (resource: ResourceName, object: Obj, name: string, namespace?: string): void => {
    if ('remove' in c && c.remove) kube.remove(RESOURCES[resource], name, namespace);
    else kube.put(RESOURCES[resource], object);
  };
  switch (c.type) {
    case 'node':
      put(
        'nodes',
        nodeObj(c.name, c.zone, {
          arch: c.arm ? 'arm64' : 'amd64',
          type: c.arm ? 'm7g.xlarge' : 'm6i.xlarge',
          spot: c.spot,
          eks: c.eks,
          kubelet: c.kubelet,
          ...(c.tainted
            ? { taints: [{ key: c.arm ? 'arch' : 'spot', value: 'yes', effect: 'NoSchedule' }] }
            : {}),
        }),
        c.name,
      );
      return;
    case 'namespace':
      kube.put(RESOURCES.namespaces, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: c.name, labels: { team: c.team } },
      });
      return;
    case 'deployment': {
      const d = deployment(c.app, nsOfApp(c.app), {
        replicas: c.replicas,
        ...(c.ignore ? { annotations: { 'kopek.dev/ignore': 'true' } } : {}),
      });
      (d.spec as Obj).template = template(c.app, c.tier, c.image);
      put('deployments', d, c.app, nsOfApp(c.app));
      return;
    }
    case 'replicaset':
      put(
        'replicasets',
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: {
            name: `${c.app}-${c.hash}`,
            namespace: nsOfApp(c.app),
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: 'Deployment',
                name: c.app,
                uid: 'u',
                controller: true,
              },
            ],
          },
          spec: { replicas: c.replicas, template: template(c.app, 'web', IMAGES[0] ?? '') },
          // What the ReplicaSet controller counts: not the pods on their way out.
          status: { replicas: c.replicas },
        },
        `${c.app}-${c.hash}`,
        nsOfApp(c.app),
      );
      return;
    case 'pod': {
      const { namespace, object } = podOf(c);
      // A pod that changes owner changes namespace too: remove it from the other one.
      for (const other of NAMESPACES)
        if (other !== namespace) kube.remove(RESOURCES.pods, c.name, other);
      put('pods', object, c.name, namespace);
      return;
    }
    case 'statefulset':
      put(
        'statefulsets',
        {
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          metadata: { name: 'sts', namespace: 'a' },
          spec: {
            replicas: c.replicas,
            selector: { matchLabels: { app: 'sts' } },
            template: template('sts', 'db', IMAGES[1] ?? ''),
          },
        },
        'sts',
        'a',
      );
      return;
    case 'daemonset':
      put(
        'daemonsets',
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          metadata: { name: 'ds', namespace: 'b' },
          spec: {
            selector: { matchLabels: { app: 'ds' } },
            template: template('ds', 'agent', c.image),
          },
        },
        'ds',
        'b',
      );
      return;
    case 'cronjob':
      put(
        'cronjobs',
        {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          metadata: { name: 'cron', namespace: 'a' },
          spec: {
            schedule: '*/5 * * * *',
            jobTemplate: { spec: { template: template('cron', 'batch', IMAGES[2] ?? '') } },
          },
        },
        'cron',
        'a',
      );
      return;
    case 'job':
      put(
        'jobs',
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: {
            name: c.name,
            namespace: 'a',
            ownerReferences: [
              {
                apiVersion: 'batch/v1',
                kind: 'CronJob',
                name: c.owner,
                uid: 'c',
                controller: true,
              },
            ],
          },
          spec: { template: template('cron', 'batch', IMAGES[2] ?? '') },
          status: {
            startTime: '2026-12-01T00:00:00Z',
            completionTime: new Date(Date.parse('2026-12-01T00:00:00Z') + c.seconds * 1000)
              .toISOString()
              .replace('.000', ''),
          },
        },
        c.name,
        'a',
      );
      return;
    case 'service':
      put(
        'services',
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: c.name, namespace: nsOfService(c.name) },
          spec: { selector: { app: c.app, ...(c.tier ? { tier: c.tier } : {}) } },
        },
        c.name,
        nsOfService(c.name),
      );
      return;
    case 'slice':
      put(
        'endpointslices',
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name: `${c.service}-x`,
            namespace: nsOfService(c.service),
            labels: { 'kubernetes.io/service-name': c.service },
          },
          addressType: 'IPv4',
          endpoints: c.zones.map((zone) => ({ zone, conditions: { ready: true } })),
        },
        `${c.service}-x`,
        nsOfService(c.service),
      );
      return;
    case 'pdb':
      put(
        'poddisruptionbudgets',
        {
          apiVersion: 'policy/v1',
          kind: 'PodDisruptionBudget',
          metadata: { name: c.name, namespace: nsOfApp(c.app) },
          spec: {
            selector:
              c.byExpression === true
                ? { matchExpressions: [{ key: 'app', operator: 'In', values: [c.app] }] }
                : { matchLabels: { app: c.app } },
            maxUnavailable: c.maxUnavailable,
          },
        },
        c.name,
        nsOfApp(c.app),
      );
      return;
    case 'hpa':
      put(
        'horizontalpodautoscalers',
        {
          apiVersion: 'autoscaling/v2',
          kind: 'HorizontalPodAutoscaler',
          metadata: { name: c.name, namespace: nsOfApp(c.app) },
          spec: {
            scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: c.app },
            minReplicas: c.min,
            maxReplicas: 10,
          },
        },
        c.name,
        nsOfApp(c.app),
      );
      return;
    case 'policy':
      put(
        'savingspolicies',
        {
          apiVersion: 'kopek.dev/v1alpha1',
          kind: 'SavingsPolicy',
          metadata: { name: 'team' },
          spec: {
            mode: 'Recommend',
            priority: 10,
            namespaceSelector: { matchLabels: { team: c.team } },
            spot: { enabled: c.spot },
          },
        },
        'team',
      );
      return;
    case 'image': {
      const answers: ImagePlatformsFact[] = [
        { platforms: ['linux/amd64'], digest: 'sha256:1' },
        { platforms: ['linux/amd64', 'linux/arm64'], digest: 'sha256:2' },
        { error: 'registry: 503' },
      ];
      w.registry.answers.set(c.image, answers[c.answer] ?? { platforms: [] });
      // kopek hears of a new answer when a workload running the image changes and it asks (a
      // moved tag that nothing announces is the resync's job): each image has a Deployment of
      // its own that a new answer touches.
      const name = `runs-${IMAGES.indexOf(c.image)}`;
      const d = deployment(name, 'b', {
        annotations: { 'example.com/revision': String(++revisions) },
      });
      (d.spec as Obj).template = template(name, 'web', c.image);
      kube.put(RESOURCES.deployments, d);
      return;
    }
  }
}

/** A populated world to start from, so that random changes meet pods, Services and budgets. */
const BASELINE: Change[] = [
  ...NODES.map((name, i): Change => ({
    type: 'node',
    name,
    zone: ZONES[i % ZONES.length] ?? '',
    arm: i === 3,
    spot: i === 1,
    tainted: i === 3,
    eks: false,
    kubelet: 'v1.33.1-eks-1',
    remove: false,
  })),
  ...APPS.flatMap((app): Change[] => [
    {
      type: 'deployment',
      app,
      replicas: 2,
      tier: 'web',
      image: IMAGES[0] ?? '',
      ignore: false,
      remove: false,
    },
    { type: 'replicaset', app, hash: 'h1', replicas: 1, remove: false },
  ]),
  ...['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'].map((name, i): Change => ({
    type: 'pod',
    name,
    owner: [...APPS, 'sts', 'ds', 'job', 'd0'][i] ?? 'd0',
    hash: 'h1',
    node: NODES[i % NODES.length],
    ready: true,
    done: false,
    cpu: 250,
    remove: false,
  })),
  { type: 'statefulset', replicas: 2, remove: false },
  { type: 'daemonset', image: IMAGES[1] ?? '', remove: false },
  { type: 'cronjob', remove: false },
  { type: 'job', name: 'cron-100', owner: 'cron', seconds: 60, remove: false },
  { type: 'service', name: 's0', app: 'd0', tier: undefined, remove: false },
  { type: 'service', name: 's1', app: 'd1', tier: 'web', remove: false },
  { type: 'slice', service: 's0', zones: ZONES, remove: false },
  { type: 'pdb', name: 'b0', app: 'd2', maxUnavailable: 1, remove: false },
];

/** d1 scaled to 3 replicas: an edit of its own object. */
const SCALE_D1: Change = {
  type: 'deployment',
  app: 'd1',
  replicas: 3,
  tier: 'web',
  image: IMAGES[0] ?? '',
  ignore: false,
  remove: false,
};

describe('incremental facts', () => {
  it('equal a full rebuild after any sequence of changes (random, seeded)', async () => {
    let partial = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(change, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        async (batches) => {
          await world?.cache.stop();
          const w = await startWorld();
          for (const c of BASELINE) apply(w, c);
          await rebuild(w);
          for (const batch of batches) {
            for (const c of batch) apply(w, c);
            if (!(await rebuild(w)).full) partial++;
            await expectEqualToFull(w);
          }
        },
      ),
      { seed: 11, numRuns: 100 },
    );
    // Most batches leave the cluster's facts alone and are built incrementally.
    expect(partial).toBeGreaterThan(300);
  }, 120_000);

  it('rebuilds only the workload of a pod that changed, and reports it alone', async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    const first = await rebuild(w);
    expect(first.full).toBe(true);
    expect(first.built).toBe(w.facts.size);
    // p1 is d1's pod: turning it unready changes d1's facts and no one else's.
    apply(w, {
      type: 'pod',
      name: 'p1',
      owner: 'd1',
      hash: 'h1',
      node: 'n1',
      ready: false,
      done: false,
      cpu: 250,
      remove: false,
    });
    const next = await rebuild(w);
    expect(next).toMatchObject({ full: false, built: 1, changed: ['wl/b/Deployment/d1'] });
    expect(next.edited.size).toBe(0); // its pod moved; no one edited it
    // An update that changes nothing the facts read builds nothing.
    w.kube.put(RESOURCES.nodes, { ...nodeObj('n1', ZONES[1] ?? '', { spot: true }) });
    expect((await rebuild(w)).built).toBe(0);
    // Scaling it is an edit: it goes before workloads whose pods merely moved.
    apply(w, SCALE_D1);
    const scaled = await rebuild(w);
    expect(scaled.changed).toEqual(['wl/b/Deployment/d1']);
    expect([...scaled.edited]).toEqual(['wl/b/Deployment/d1']);
    await expectEqualToFull(w);
  });

  it("follows a pod to the parent its owner's name guesses, when that comes back", async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    const d0 = (remove: boolean): Change => ({
      type: 'deployment',
      app: 'd0',
      replicas: 2,
      tier: 'web',
      image: 'img/x:1',
      ignore: false,
      remove,
    });
    // p0 (of ReplicaSet d0-h1) and p6 (of Job cron-100) lose their parent, then their owner: by
    // the owners' names they would be d0's and cron's, which are gone. When d0 and cron come
    // back, the pods are theirs again, though neither the pods nor their owners changed.
    const steps: Change[] = [
      d0(true),
      { type: 'cronjob', remove: true },
      { type: 'replicaset', app: 'd0', hash: 'h1', replicas: 1, remove: true },
      { type: 'job', name: 'cron-100', owner: 'cron', seconds: 60, remove: true },
      d0(false),
      { type: 'cronjob', remove: false },
    ];
    for (const step of steps) {
      apply(w, step);
      await rebuild(w);
      await expectEqualToFull(w);
    }
    expect(w.facts.get('wl/a/Deployment/d0')?.pods.map((p) => p.name)).toContain('p0');
  });

  it("leaves a Deployment's old ReplicaSet out of the cache; its pod on the way out stays the Deployment's", async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    // d0 rolls out: h2 is the new revision, h1 is scaled to zero while its pod p0 is on its way
    // out (it runs until it is gone, and the ReplicaSet no longer counts it: a cluster before 1.35,
    // or with the DeploymentReplicaSetTerminatingReplicas feature off, writes no
    // terminatingReplicas).
    apply(w, { type: 'replicaset', app: 'd0', hash: 'h2', replicas: 1, remove: false });
    apply(w, { type: 'replicaset', app: 'd0', hash: 'h1', replicas: 0, remove: false });
    expect((await rebuild(w)).full).toBe(false);
    expect(w.cache.get('replicasets', 'a/d0-h1')).toBeUndefined();
    expect(w.cache.get('replicasets', 'a/d0-h2')).toBeDefined();
    expect(w.facts.get('wl/a/Deployment/d0')?.pods.map((p) => p.name)).toContain('p0');
    const fromApi = await buildFromApi(w);
    expect(new Map([...fromApi.keys()].map((key) => [key, w.facts.get(key)]))).toEqual(fromApi);
    expect(w.facts.size).toBe(fromApi.size);
    // p0 goes: the Deployment is rebuilt without it, though its ReplicaSet is not cached.
    apply(w, {
      type: 'pod',
      name: 'p0',
      owner: 'd0',
      hash: 'h1',
      node: 'n0',
      ready: true,
      done: false,
      cpu: 250,
      remove: true,
    });
    await rebuild(w);
    expect(w.facts.get('wl/a/Deployment/d0')?.pods.map((p) => p.name)).not.toContain('p0');
    await expectEqualToFull(w);
  });

  it('rebuilds everything after a failed rebuild, with the edits it had taken still first', async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    apply(w, SCALE_D1);
    // A cache that fails whatever is asked of it (an informer's store cannot, but a bug could).
    const failing = new Proxy(w.cache, {
      get: () => () => {
        throw new Error('broken cache');
      },
    });
    await expect(
      w.facts.rebuild(failing, { imagePlatforms: w.registry, metrics: w.metrics, log: w.log }),
    ).rejects.toThrow('broken cache');
    const next = await rebuild(w);
    expect(next.full).toBe(true);
    expect(next.changed).toContain('wl/b/Deployment/d1');
    expect([...next.edited]).toEqual(['wl/b/Deployment/d1']);
    await expectEqualToFull(w);
  });

  it("rebuilds a Job's CronJob when the Job changes, not every workload of its namespace", async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    apply(w, { type: 'job', name: 'cron-100', owner: 'cron', seconds: 120, remove: false });
    const next = await rebuild(w);
    expect(next).toMatchObject({ full: false, built: 1, changed: ['wl/a/CronJob/cron'] });
    expect(w.facts.get('wl/a/CronJob/cron')?.job?.observedRunSeconds).toBe(120);
    await expectEqualToFull(w);
  });

  it("rebuilds a ReplicaSet's Deployment when the ReplicaSet changes, not every workload of its namespace", async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    const others = [...w.facts.keys()].filter((key) => key.startsWith('wl/a/')).length;
    expect(others).toBeGreaterThan(2);
    // A rollout's new ReplicaSet: only the Deployment that owns it can read it.
    apply(w, { type: 'replicaset', app: 'd2', hash: 'h2', replicas: 1, remove: false });
    const next = await rebuild(w);
    expect(next).toMatchObject({ full: false, built: 1 });
    await expectEqualToFull(w);
  });

  it('rebuilds the Deployment that adopts a ReplicaSet whose name it does not share', async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    // A pod of ReplicaSet "legacy-h7", which nothing owns yet: the pod is that ReplicaSet's.
    w.kube.put(
      RESOURCES.pods,
      pod('p7', 'a', 'n2', { kind: 'ReplicaSet', name: 'legacy-h7' }, { app: 'legacy' }),
    );
    const legacy = (owners: Obj[]): Obj => ({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'legacy-h7', namespace: 'a', ownerReferences: owners },
      spec: { replicas: 1, template: template('legacy', 'web', IMAGES[0] ?? '') },
    });
    w.kube.put(RESOURCES.replicasets, legacy([]));
    await rebuild(w);
    const podsOfD2 = (): string[] =>
      (w.facts.get('wl/a/Deployment/d2')?.pods ?? []).map((p) => p.name);
    expect(podsOfD2()).not.toContain('p7');
    // d2 adopts it: only its owner reference (not its name) ties it to d2.
    w.kube.put(
      RESOURCES.replicasets,
      legacy([
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'd2', uid: 'u', controller: true },
      ]),
    );
    expect((await rebuild(w)).full).toBe(false);
    expect(podsOfD2()).toContain('p7');
    await expectEqualToFull(w);
  });

  it('leaves the client weights of workloads with a Service to a rebuild that asks for them', async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    await rebuild(w);
    // A new pod of d2 moves the cluster's client pods per zone, which d0 and d1 (behind
    // Services) read; d2 itself has no Service.
    apply(w, {
      type: 'pod',
      name: 'p9',
      owner: 'd2',
      hash: 'h1',
      node: 'n2',
      ready: true,
      done: false,
      cpu: 250,
      remove: false,
    });
    const sources = { imagePlatforms: w.registry, metrics: w.metrics, log: w.log };
    const quick = await w.facts.rebuild(w.cache, sources);
    expect(quick).toMatchObject({ full: false, built: 1, changed: ['wl/a/Deployment/d2'] });
    expect(quick.clientsMoved).toBe(true);
    // Until asked, d0 keeps its client weights; nothing else changed, so nothing is built.
    expect(await w.facts.rebuild(w.cache, sources)).toMatchObject({ built: 0, clientsMoved: true });
    w.facts.changes.markClients();
    const refreshed = await w.facts.rebuild(w.cache, sources);
    expect(refreshed.changed.sort()).toEqual(['wl/a/Deployment/d0', 'wl/b/Deployment/d1']);
    // No change of their own marked them: the controller queues them behind workloads that changed.
    expect([...refreshed.refreshed].sort()).toEqual(refreshed.changed);
    expect(quick.refreshed.size).toBe(0);
    expect(refreshed.clientsMoved).toBe(false);
    await expectEqualToFull(w);
  });
});

describe('the indexed input kept between rebuilds', () => {
  it("keeps the cache's order of an object deleted and added again in one batch", async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    // Two budgets allowing as few disruptions select d2: the first in the cache's order wins.
    apply(w, { type: 'pdb', name: 'b1', app: 'd2', maxUnavailable: 1, remove: false });
    await rebuild(w);
    expect(w.facts.get('wl/a/Deployment/d2')?.pdb?.name).toBe('b0');
    // Deleted, then b1 created, then b0 again: b0 comes after b1 in the cache, so b1 wins.
    apply(w, { type: 'pdb', name: 'b1', app: 'd2', maxUnavailable: 1, remove: true });
    await rebuild(w);
    apply(w, { type: 'pdb', name: 'b0', app: 'd2', maxUnavailable: 1, remove: true });
    apply(w, { type: 'pdb', name: 'b1', app: 'd2', maxUnavailable: 1, remove: false });
    apply(w, { type: 'pdb', name: 'b0', app: 'd2', maxUnavailable: 1, remove: false });
    expect((await rebuild(w)).full).toBe(false);
    expect(w.facts.get('wl/a/Deployment/d2')?.pdb?.name).toBe('b1');
    await expectEqualToFull(w);
  });

  it('moves a pod between workloads when its ReplicaSet goes and comes back', async () => {
    const w = await startWorld();
    for (const c of BASELINE) apply(w, c);
    // Without its pod-template-hash label, p2 belongs to d2 only through its ReplicaSet.
    const p2 = {
      type: 'pod',
      name: 'p2',
      owner: 'd2',
      hash: 'h1',
      labelled: false,
      node: 'n2',
      ready: true,
      done: false,
      cpu: 250,
      remove: false,
    } as const;
    apply(w, p2);
    await rebuild(w);
    const podsOfD2 = (): string[] =>
      (w.facts.get('wl/a/Deployment/d2')?.pods ?? []).map((p) => p.name);
    expect(podsOfD2()).toEqual(['p2']);
    apply(w, { type: 'replicaset', app: 'd2', hash: 'h1', replicas: 1, remove: true });
    expect((await rebuild(w)).full).toBe(false);
    expect(podsOfD2()).toEqual([]);
    await expectEqualToFull(w);
    apply(w, { type: 'replicaset', app: 'd2', hash: 'h1', replicas: 1, remove: false });
    await rebuild(w);
    expect(podsOfD2()).toEqual(['p2']);
    // Its node moving to another zone moves it in the client pods per zone too.
    apply(w, {
      type: 'node',
      name: 'n2',
      zone: 'us-east-1a',
      arm: false,
      spot: false,
      tainted: false,
      eks: false,
      kubelet: 'v1.33.1-eks-1',
      remove: false,
    });
    await rebuild(w);
    expect(w.facts.get('wl/a/Deployment/d2')?.pods[0]?.node?.zone).toBe('us-east-1a');
    await expectEqualToFull(w);
  });
});
