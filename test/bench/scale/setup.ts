/**
 * Builds the benchmark's cluster quickly: a control plane whose clients are not throttled, the
 * objects created in parallel, and waits (with progress) until the real controllers, scheduler
 * and KWOK have made and placed every pod and every EndpointSlice.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { StartOptions } from '../../cluster/cluster.ts';
import {
  collectionPath,
  type KubeClient,
  type ResourceType,
} from '../../../operator/kube/client.ts';
import { Informer } from '../../../operator/kube/informer.ts';
import { RESOURCES } from '../../../operator/kube/resources.ts';
import { silentLogger } from '../../../operator/log.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { inParallel } from '../../support/parallel.ts';
import type { BenchApi } from './http.ts';
import { isOldRevision } from './workloads.ts';

export type Say = (line: string) => void;

/**
 * Flags for the benchmark's control plane only (tests keep the defaults). Each removes a limit
 * that would make setting up 50,000 pods take an hour on two cores, or a load that would take
 * CPU from what is measured; none changes what kopek sees of the objects.
 */
export async function benchComponentArgs(
  dir: string,
): Promise<NonNullable<StartOptions['componentArgs']>> {
  // KWOK's client is not rate-limited, but it plays pods' and nodes' stages with 4 workers each.
  const kwokConfig = join(dir, 'kwok.yaml');
  await writeFile(
    kwokConfig,
    stringify({
      apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
      kind: 'KwokConfiguration',
      options: {
        podPlayStageParallelism: 32,
        nodePlayStageParallelism: 16,
        nodeLeaseParallelism: 16,
      },
    }),
  );
  const qps = ['--kube-api-qps=1000', '--kube-api-burst=2000'];
  return {
    // 50,000 pods, their events and ReplicaSets outgrow the tests' 4 GiB.
    etcd: ['--quota-backend-bytes=8589934592'],
    'kube-apiserver': ['--max-requests-inflight=1600', '--max-mutating-requests-inflight=800'],
    'kube-controller-manager': [
      // The default 20 QPS is ~15 pods/s into Running.
      ...qps,
      '--concurrent-deployment-syncs=50',
      '--concurrent-replicaset-syncs=50',
      '--concurrent-statefulset-syncs=20',
      '--concurrent-daemonset-syncs=10',
      '--concurrent-endpoint-syncs=20',
      '--concurrent-service-endpoint-syncs=20',
      '--concurrent-gc-syncs=50',
      // Nodes report every 10–20 min (below): wait longer before calling them NotReady.
      '--node-monitor-grace-period=30m',
      // No metrics source here: the HPA controller would only log a failed scrape of every HPA
      // every 15 s. kopek reads HPAs' spec; nothing changes them during the benchmark. kopek
      // reads EndpointSlices, not the legacy Endpoints: their controllers only double the writes.
      '--controllers=*,-horizontal-pod-autoscaler-controller,-endpoints-controller,-endpointslice-mirroring-controller',
    ],
    'kube-scheduler': qps,
    kwok: [
      `--config=${kwokConfig}`,
      // KWOK 0.7 picks its node heartbeat by the lease setting, the wrong way round: with leases
      // (the default) it updates each node's status every 20–25 s, ten times what a kubelet does
      // (5 min), and 2,000 nodes would send kopek 90 node updates a second. Without leases it
      // updates a node every 10–20 min (and renews no leases, which kopek does not read anyway).
      '--node-lease-duration-seconds=0',
    ],
  };
}

const BY_KIND = new Map<string, ResourceType>(
  Object.values(RESOURCES).map((type) => [type.kind, type]),
);

function resourceOf(kind: string): ResourceType {
  const type = BY_KIND.get(kind);
  if (!type) throw new Error(`the benchmark does not create ${kind} objects`);
  return type;
}

const RETRIABLE = new Set([429, 500, 502, 503, 504]);

/**
 * POSTs each object, `concurrency` at a time, retrying while the API server sheds load or times
 * out (a create that timed out may still have happened: then the retry finds it, which is fine).
 */
export async function createObjects(
  api: BenchApi,
  what: string,
  objects: readonly { kind?: unknown; metadata?: unknown }[],
  say: Say,
  concurrency = 16,
): Promise<number> {
  const started = Date.now();
  let created = 0;
  const progress = setInterval(() => {
    const seconds = (Date.now() - started) / 1000;
    say(
      `  ${what}: ${created.toLocaleString('en-US')}/${objects.length.toLocaleString('en-US')} created (${Math.round(created / seconds)}/s)`,
    );
  }, 10_000);
  try {
    await inParallel(objects, concurrency, async (object) => {
      const metadata = object.metadata as { namespace?: string };
      const path = collectionPath(resourceOf(String(object.kind)), metadata.namespace);
      for (let attempt = 1; ; attempt++) {
        let status = 0;
        let text: string;
        try {
          ({ status, text } = await api.request('POST', path, {
            body: object,
            timeoutMs: 180_000,
          }));
        } catch (error) {
          text = String(error);
        }
        if ((status >= 200 && status < 300) || (status === 409 && attempt > 1)) break;
        if ((status !== 0 && !RETRIABLE.has(status)) || attempt === 10)
          throw new Error(
            `creating ${String(object.kind)} in ${path}: HTTP ${status}: ${text.slice(0, 300)}`,
          );
        await sleep(200 * attempt);
      }
      created++;
    });
  } finally {
    clearInterval(progress);
  }
  return (Date.now() - started) / 1000;
}

const NO_EVENTS = 'kopek-bench-no-events';

/**
 * Refuses Events (the scheduler's and controllers' one or two per pod) while the cluster is
 * set up: they are a quarter of the writes, and kopek does not read them. Returns the undo,
 * to run before anything is measured.
 */
export async function refuseEvents(api: BenchApi): Promise<() => Promise<void>> {
  const group = '/apis/admissionregistration.k8s.io/v1';
  await api.json('POST', `${group}/validatingadmissionpolicies`, {
    body: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: NO_EVENTS },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ['', 'events.k8s.io'],
              apiVersions: ['*'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['events'],
            },
          ],
        },
        validations: [
          { expression: 'false', message: 'no Events while the scale benchmark sets up' },
        ],
      },
    },
  });
  await api.json('POST', `${group}/validatingadmissionpolicybindings`, {
    body: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: NO_EVENTS },
      spec: { policyName: NO_EVENTS, validationActions: ['Deny'] },
    },
  });
  return async () => {
    await api.json('DELETE', `${group}/validatingadmissionpolicybindings/${NO_EVENTS}`);
    await api.json('DELETE', `${group}/validatingadmissionpolicies/${NO_EVENTS}`);
  };
}

/** Waits until `count` nodes are Ready (KWOK reports them so). */
export async function waitForNodes(
  api: BenchApi,
  count: number,
  say: Say,
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    const nodes = await api.listAll<{
      status?: { conditions?: { type: string; status: string }[] };
    }>('/api/v1/nodes');
    const ready = nodes.filter((node) =>
      node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    ).length;
    if (ready >= count) return;
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `only ${ready} of ${count} nodes were Ready after ${Math.round(timeoutMs / 1000)} s`,
      );
    say(`  nodes Ready: ${ready}/${count}`);
    await sleep(3000);
  }
}

/** Pods are refused until their namespace's default ServiceAccount exists. */
export async function waitForServiceAccounts(
  api: BenchApi,
  namespaces: readonly string[],
): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const accounts = await api.listAll<{ metadata: { name: string; namespace: string } }>(
      '/api/v1/serviceaccounts',
    );
    const ready = new Set(
      accounts.filter((a) => a.metadata.name === 'default').map((a) => a.metadata.namespace),
    );
    const missing = namespaces.filter((namespace) => !ready.has(namespace));
    if (missing.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `no default ServiceAccount after 120 s in ${missing.slice(0, 5).join(', ')}…`,
      );
    await sleep(500);
  }
}

interface ReadyCount {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  ready: number;
}

/**
 * Waits until the workloads report `expectedPods` ready pods (Deployments' and StatefulSets'
 * readyReplicas, DaemonSets' numberReady, from list-watch caches), saying how it goes.
 */
export async function waitForPods(
  client: KubeClient,
  expectedPods: number,
  say: Say,
  timeoutMs: number,
): Promise<void> {
  const informers = (['deployments', 'statefulsets', 'daemonsets'] as const).map(
    (name) =>
      new Informer<ReadyCount>({
        type: RESOURCES[name],
        client,
        log: silentLogger,
        project: (object) => {
          const status = (object.status ?? {}) as { readyReplicas?: number; numberReady?: number };
          return {
            metadata: object.metadata as ReadyCount['metadata'],
            ready: status.readyReplicas ?? status.numberReady ?? 0,
          };
        },
      }),
  );
  for (const informer of informers) informer.start();
  const started = Date.now();
  let last = { at: started, ready: 0 };
  try {
    for (;;) {
      await sleep(2000);
      let ready = 0;
      for (const informer of informers) for (const object of informer.list()) ready += object.ready;
      const now = Date.now();
      if (now - last.at >= 10_000 || ready >= expectedPods) {
        const rate = ((ready - last.ready) * 1000) / (now - last.at);
        say(
          `  pods ready: ${ready.toLocaleString('en-US')}/${expectedPods.toLocaleString('en-US')} (${rate.toFixed(0)}/s)`,
        );
        last = { at: now, ready };
      }
      if (ready >= expectedPods) return;
      if (now - started > timeoutMs)
        throw new Error(
          `only ${ready} of ${expectedPods} pods were ready after ${Math.round(timeoutMs / 1000)} s`,
        );
    }
  } finally {
    await Promise.all(informers.map((informer) => informer.stop()));
  }
}

interface Slice {
  metadata: { namespace: string; labels?: Record<string, string> };
  endpoints?: { conditions?: { ready?: boolean } }[] | null;
}

/** Waits until every Service's EndpointSlices list as many ready endpoints as it has pods. */
export async function waitForEndpoints(
  api: BenchApi,
  expected: readonly { namespace: string; name: string; endpoints: number }[],
  say: Say,
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  for (;;) {
    const counts = new Map<string, number>();
    for (const slice of await api.listAll<Slice>(collectionPath(RESOURCES.endpointslices))) {
      const service = slice.metadata.labels?.['kubernetes.io/service-name'];
      if (service === undefined) continue;
      const key = `${slice.metadata.namespace}/${service}`;
      const ready = (slice.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
      counts.set(key, (counts.get(key) ?? 0) + ready);
    }
    const behind = expected.filter(
      (service) => (counts.get(`${service.namespace}/${service.name}`) ?? 0) < service.endpoints,
    );
    say(
      `  Services with every endpoint in their EndpointSlices: ${expected.length - behind.length}/${expected.length}`,
    );
    if (behind.length === 0) return;
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `${behind.length} Services still lack endpoints after ${Math.round(timeoutMs / 1000)} s, e.g. ${behind
          .slice(0, 3)
          .map((s) => `${s.namespace}/${s.name}`)
          .join(', ')}`,
      );
    await sleep(5000);
  }
}

/**
 * Waits until the controllers have taken in the old revisions the benchmark made (oldRevisions in
 * workloads.ts): each Deployment numbered after its `count` old ReplicaSets (the controller
 * renumbers its current one), and each old ReplicaSet's status written. Those writes must not
 * land in what the benchmark measures next.
 */
export async function waitForOldRevisions(
  api: BenchApi,
  deployments: number,
  count: number,
  say: Say,
  timeoutMs: number,
): Promise<void> {
  const started = Date.now();
  const revision = String(count + 1);
  for (;;) {
    const renumbered = (
      await api.listAll<{ metadata: { annotations?: Record<string, string> } }>(
        collectionPath(RESOURCES.deployments),
      )
    ).filter((d) => d.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision);
    const observed = (
      await api.listAll<{ metadata: { name: string }; status?: { observedGeneration?: number } }>(
        collectionPath(RESOURCES.replicasets),
      )
    ).filter((rs) => isOldRevision(rs.metadata.name) && (rs.status?.observedGeneration ?? 0) >= 1);
    say(
      `  Deployments renumbered: ${renumbered.length}/${deployments}; old ReplicaSets with a status: ${observed.length}/${deployments * count}`,
    );
    if (renumbered.length >= deployments && observed.length >= deployments * count) return;
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `the controllers have not taken in the old revisions after ${Math.round(timeoutMs / 1000)} s`,
      );
    await sleep(10_000);
  }
}
