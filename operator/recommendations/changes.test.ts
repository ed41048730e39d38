import { afterEach, describe, expect, it } from 'vitest';
import type { WorkloadRecommendationStatus } from '../../recommender/api/v1alpha1.ts';
import { factsFromObjects } from '../../recommender/facts-from-objects.ts';
import { deployment, nodeObj, pod } from '../../recommender/objects/testing.ts';
import type { Obj } from '../../recommender/objects/read.ts';
import { recommend } from '../../recommender/recommend.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { rng } from '../../test/support/random.ts';
import { RESOURCES, type ResourceName } from '../kube/resources.ts';
import { FakeKube } from '../testing/fake-kube.ts';
import { recommendationOf, startFakeOperator, type FakeOperator } from '../testing/harness.ts';
import { ManualClock } from '../testing/manual-clock.ts';

let operator: FakeOperator | undefined;
afterEach(async () => {
  await operator?.stop();
  operator = undefined;
});

const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const NODES = ZONES.flatMap((zone, z) => [0, 1].map((i) => ({ name: `n-${z}-${i}`, zone })));
const APPS = Array.from({ length: 12 }, (_, i) => `app${i}`);
const IMAGES = ['img/a:1', 'img/b:1', 'img/c:1'];

/** One Deployment as the test moves it, and the pods its ReplicaSet runs. */
interface App {
  name: string;
  replicas: number;
  image: string;
  spotNever: boolean;
  revision: number;
  pods: string[];
  nextPod: number;
}

/**
 * A small fleet on the in-memory API (Deployments with their ReplicaSet, pods on nodes in three
 * zones and a Service each), moved as the scale benchmark moves it: a stream of scales (the
 * ReplicaSet adds or removes a pod), image changes (a rollout replaces the pods) and
 * `kopek.dev/spot` annotations, interleaved with rebuilds and reconciles.
 */
class Fleet {
  readonly apps: App[];
  private readonly op: FakeOperator;

  constructor(op: FakeOperator) {
    this.op = op;
    this.apps = APPS.map((name, i) => ({
      name,
      replicas: 2 + (i % 3),
      image: IMAGES[i % IMAGES.length] ?? '',
      spotNever: false,
      revision: 0,
      pods: [],
      nextPod: 0,
    }));
    for (const { name, zone } of NODES) op.kube.put(RESOURCES.nodes, nodeObj(name, zone));
    for (const app of this.apps) {
      op.kube.put(RESOURCES.services, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: app.name, namespace: 'shop' },
        spec: { selector: { app: app.name } },
      });
      this.putDeployment(app);
      this.putReplicaSet(app);
      while (app.pods.length < app.replicas) this.addPod(app);
    }
  }

  scale(app: App): void {
    app.replicas = app.replicas === 1 ? 2 : app.replicas - 1;
    this.putDeployment(app);
    while (app.pods.length > app.replicas) this.removePod(app);
    while (app.pods.length < app.replicas) this.addPod(app);
  }

  /** A rollout: a new ReplicaSet whose pods replace the old ones one by one. */
  image(app: App): void {
    app.image = IMAGES[(IMAGES.indexOf(app.image) + 1) % IMAGES.length] ?? '';
    this.putDeployment(app);
    const old = app.revision;
    app.revision++;
    this.putReplicaSet(app);
    const stale = [...app.pods];
    for (const name of stale) {
      this.addPod(app);
      this.removePod(app, name);
    }
    this.op.kube.remove(RESOURCES.replicasets, `${app.name}-r${old}`, 'shop');
  }

  annotate(app: App): void {
    app.spotNever = !app.spotNever;
    this.putDeployment(app);
  }

  private putDeployment(app: App): void {
    const object = deployment(app.name, 'shop', {
      replicas: app.replicas,
      ...(app.spotNever ? { annotations: { 'kopek.dev/spot': 'never' } } : {}),
    });
    setImage(object, app.image);
    this.op.kube.put(RESOURCES.deployments, object);
  }

  private putReplicaSet(app: App): void {
    this.op.kube.put(RESOURCES.replicasets, {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${app.name}-r${app.revision}`,
        namespace: 'shop',
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            name: app.name,
            uid: `uid-${app.name}`,
            controller: true,
          },
        ],
      },
      spec: { replicas: app.replicas, selector: { matchLabels: { app: app.name } } },
    });
  }

  private addPod(app: App): void {
    const name = `${app.name}-r${app.revision}-${app.nextPod}`;
    const node = NODES[(app.nextPod + APPS.indexOf(app.name)) % NODES.length]?.name ?? '';
    app.nextPod++;
    const object = pod(
      name,
      'shop',
      node,
      { kind: 'ReplicaSet', name: `${app.name}-r${app.revision}` },
      { app: app.name },
    );
    setImage(object, app.image);
    this.op.kube.put(RESOURCES.pods, object);
    app.pods.push(name);
  }

  private removePod(app: App, name = app.pods[0]): void {
    if (name === undefined) return;
    this.op.kube.remove(RESOURCES.pods, name, 'shop');
    app.pods = app.pods.filter((p) => p !== name);
  }
}

function setImage(object: Obj, image: string): void {
  const spec = object.spec as { template?: { spec: Obj }; containers?: Obj[] };
  const containers = (spec.template?.spec ?? spec).containers as { image: string }[];
  for (const container of containers) container.image = image;
}

/** The status each workload should have now: recommended from a build of the facts from scratch. */
function expectedStatuses(op: FakeOperator): Map<string, WorkloadRecommendationStatus> {
  const objects: Obj[] = [];
  for (const name of Object.keys(RESOURCES) as ResourceName[])
    if (name !== 'workloadrecommendations') objects.push(...op.kube.objects(RESOURCES[name]));
  const minor = op.cache.kubernetesMinor;
  const { facts } = factsFromObjects(
    objects,
    minor === undefined ? {} : { kubernetesMinor: minor },
  );
  return new Map(facts.map((f) => [f.name, recommend(f, SNAPSHOT_PRICES)]));
}

/** What a stored status says, without what depends on when it was written. */
function decided(status: unknown): unknown {
  const { conditions: _, observedGeneration: __, ...rest } = (status ?? {}) as Obj;
  return rest;
}

/** Expects every recommendation to be what the world says now. */
function expectAllReflected(op: FakeOperator, fleet: Fleet): void {
  const expected = expectedStatuses(op);
  expect(expected.size).toBe(APPS.length);
  for (const app of fleet.apps)
    expect(
      decided(recommendationOf(op.kube, 'shop', app.name)?.status),
      `${app.name}'s recommendation`,
    ).toEqual(decided(expected.get(app.name)));
}

/** The recommendations whose status was written since call number `from`. */
function statusWrites(op: FakeOperator, from: number): Set<string | undefined> {
  return new Set(
    op.kube.calls
      .slice(from)
      .filter((call) => call.verb === 'apply-status')
      .map((call) => call.name),
  );
}

/** Runs the stream of changes; then every recommendation must be what the world says now. */
async function expectStreamReflected(op: FakeOperator): Promise<void> {
  const fleet = new Fleet(op);
  await op.until(() =>
    fleet.apps.every((app) => recommendationOf(op.kube, 'shop', app.name)?.status !== undefined),
  );
  const random = rng(11);
  const kinds = ['scale', 'image', 'annotate'] as const;
  for (let k = 0; k < 150; k++) {
    const app = fleet.apps[Math.floor(random() * fleet.apps.length)];
    if (!app) continue;
    fleet[kinds[k % kinds.length] ?? 'scale'](app);
    // Changes land between, during and after rebuilds and reconciles.
    await op.clock.advance(Math.floor(random() * 400));
  }
  // Past the refresh of the client weights (a minute), well within the 10-minute resync, which
  // would repair anything the changes missed.
  await op.clock.advance(90_000);
  expectAllReflected(op, fleet);
}

describe('a stream of workload changes', () => {
  it('ends with every recommendation reflecting its workload as it is now', async () => {
    operator = await startFakeOperator();
    await expectStreamReflected(operator);
  });

  it('does so too when watch events arrive after the answers to the writes', async () => {
    const clock = new ManualClock();
    operator = await startFakeOperator({
      clock,
      kube: new FakeKube({ watchLatency: { clock, ms: 1500 } }),
    });
    await expectStreamReflected(operator);
  });

  it("updates a changed workload's recommendation first, and the other workloads' client weights in one batch later", async () => {
    operator = await startFakeOperator();
    const op = operator;
    const fleet = new Fleet(op);
    await op.clock.advance(120_000);
    const from = op.kube.calls.length;
    const [changed] = fleet.apps;
    if (!changed) throw new Error('no app');
    // One pod fewer: app0 changes, and so do the client pods per zone every other app with a
    // Service reads.
    fleet.scale(changed);
    await op.clock.advance(5_000);
    expect(statusWrites(op, from)).toEqual(new Set(['deployment-app0']));
    await op.clock.advance(60_000);
    expect(statusWrites(op, from).size).toBeGreaterThan(1);
    expectAllReflected(op, fleet);
  });
});
