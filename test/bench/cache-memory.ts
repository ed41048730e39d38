/**
 * How much memory the list-watch cache needs for 50,000 pods: the heap taken by slim projections
 * (what kopek keeps) against the whole objects as the API server sends them (what client-node's
 * informer would keep), measured in the same run; then the projections of a fleet of every kind
 * the synthetic dump has (5,000 workloads), where what the pods share varies as in a cluster;
 * then what the old revisions of those workloads' Deployments would take, were they cached.
 * Run: npm run bench:cache
 */
import { keptFor, projectionFor, type Projected } from '../../operator/kube/projections.ts';
import type { ResourceType } from '../../operator/kube/client.ts';
import { RESOURCES } from '../../operator/kube/resources.ts';
import { IncrementalInput } from '../../recommender/facts-incremental.ts';
import { syntheticDump } from './synthetic-dump.ts';

const PODS = 50_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:cache does)');

/** A pod as `kubectl get pod -o json` shows one on EKS: managed fields, env, probes, statuses. */
function pod(i: number): Record<string, unknown> {
  const name = `checkout-api-7d9f8c6b5-${i.toString(36).padStart(5, 'x')}`;
  const container = (c: string): Record<string, unknown> => ({
    name: c,
    image: `123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/${c}:4.${i % 20}.0`,
    ports: [{ containerPort: 8080, protocol: 'TCP', name: 'http' }],
    env: Array.from({ length: 12 }, (_, k) => ({
      name: `SETTING_${k}`,
      value: `value-${k}-${i % 7}`,
    })),
    resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
    readinessProbe: {
      httpGet: { path: '/ready', port: 8080, scheme: 'HTTP' },
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: [
      {
        name: 'kube-api-access',
        mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
        readOnly: true,
      },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      generateName: 'checkout-api-7d9f8c6b5-',
      namespace: `team-${i % 50}`,
      uid: `0b6f${i.toString(16).padStart(4, '0')}-1c2d-4e5f-8a9b-${i.toString(16).padStart(12, '0')}`,
      resourceVersion: String(100_000 + i),
      creationTimestamp: '2026-11-01T10:00:00Z',
      labels: {
        'app.kubernetes.io/name': 'checkout-api',
        'pod-template-hash': '7d9f8c6b5',
        team: `team-${i % 50}`,
      },
      annotations: {
        'kubectl.kubernetes.io/restartedAt': '2026-11-01T09:59:00Z',
        'prometheus.io/scrape': 'true',
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'checkout-api-7d9f8c6b5',
          uid: 'f00dfeed-0000-4000-8000-000000000001',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: 'kube-controller-manager',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-11-01T10:00:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:generateName': {},
              'f:labels': { '.': {}, 'f:app.kubernetes.io/name': {} },
              'f:ownerReferences': {},
            },
            'f:spec': {
              'f:containers': {
                'k:{"name":"api"}': {
                  '.': {},
                  'f:env': {},
                  'f:image': {},
                  'f:ports': {},
                  'f:resources': {},
                },
              },
            },
          },
        },
        {
          manager: 'kubelet',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-11-01T10:00:05Z',
          fieldsType: 'FieldsV1',
          subresource: 'status',
          fieldsV1: {
            'f:status': {
              'f:conditions': {},
              'f:containerStatuses': {},
              'f:hostIP': {},
              'f:phase': {},
              'f:podIP': {},
              'f:startTime': {},
            },
          },
        },
      ],
    },
    spec: {
      containers: [container('api'), container('envoy')],
      initContainers: [container('migrate')],
      nodeName: `ip-10-0-${i % 250}-${i % 200}.ec2.internal`,
      serviceAccountName: 'checkout-api',
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 300,
        },
      ],
      volumes: [
        {
          name: 'kube-api-access',
          projected: {
            sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }],
          },
        },
      ],
      dnsPolicy: 'ClusterFirst',
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      terminationGracePeriodSeconds: 30,
    },
    status: {
      phase: 'Running',
      hostIP: `10.0.${i % 250}.${i % 200}`,
      podIP: `10.1.${i % 250}.${i % 200}`,
      startTime: '2026-11-01T10:00:01Z',
      qosClass: 'Burstable',
      conditions: [
        'PodReadyToStartContainers',
        'Initialized',
        'Ready',
        'ContainersReady',
        'PodScheduled',
      ].map((type) => ({
        type,
        status: 'True',
        lastProbeTime: null,
        lastTransitionTime: '2026-11-01T10:00:05Z',
      })),
      containerStatuses: ['api', 'envoy'].map((c) => ({
        name: c,
        ready: true,
        restartCount: 0,
        started: true,
        image: `shop/${c}`,
        imageID: `sha256:${'a'.repeat(64)}`,
        containerID: `containerd://${'b'.repeat(64)}`,
        state: { running: { startedAt: '2026-11-01T10:00:04Z' } },
      })),
    },
  };
}

function heapMiB(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const project = projectionFor(RESOURCES.pods);
// Objects arrive as JSON text from the API server: parse each, as the cache does.
const texts = Array.from({ length: 1000 }, (_, i) => JSON.stringify(pod(i)));
const sample = (i: number): Record<string, unknown> =>
  JSON.parse(
    (texts[i % texts.length] ?? '').replace(
      /checkout-api-7d9f8c6b5-[a-z0-9x]{5}/,
      `checkout-api-7d9f8c6b5-${i.toString(36)}`,
    ),
  ) as Record<string, unknown>;

const base = heapMiB();
const slim = new Map<string, Projected>();
for (let i = 0; i < PODS; i++) {
  const projected = project(sample(i));
  slim.set(`${projected.metadata.namespace ?? ''}/${projected.metadata.name}-${i}`, projected);
}
const afterSlim = heapMiB();
const slimMiB = afterSlim - base;
const full = new Map<string, Record<string, unknown>>();
for (let i = 0; i < PODS; i++) full.set(String(i), sample(i));
const fullMiB = heapMiB() - afterSlim;

console.log(
  `pods cached:            ${PODS.toLocaleString('en-US')} (one JSON object ≈ ${((texts[0]?.length ?? 0) / 1024).toFixed(1)} KiB)`,
);
console.log(
  `slim projections:       ${slimMiB.toFixed(1)} MiB heap (${((slimMiB * 2 ** 20) / PODS).toFixed(0)} B per pod)`,
);
console.log(
  `whole objects:          ${fullMiB.toFixed(1)} MiB heap (${((fullMiB * 2 ** 20) / PODS).toFixed(0)} B per pod)`,
);
console.log(`slim / whole:           ${(slimMiB / fullMiB).toFixed(3)}`);
// Read both maps after measuring: V8 frees a variable nothing reads any more, even mid-run.
console.log(
  `process RSS at the end: ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB (holding ${slim.size + full.size} objects)`,
);

slim.clear();
full.clear();

// The fleet: each object parsed from its own JSON text, as it arrives, and projected by its kind.
const FLEET_WORKLOADS = 5_000;
const typeOfKind = new Map<string, ResourceType>(Object.values(RESOURCES).map((r) => [r.kind, r]));
const projectors = new Map<string, (object: Record<string, unknown>) => Projected>();
const beforeFleet = heapMiB();
// Dropped once read, so that the heap after holds only the projections (and what they share).
const fleetTexts = syntheticDump(FLEET_WORKLOADS, 10, 250).map((o) => JSON.stringify(o));
const fleet: Projected[] = [];
for (const text of fleetTexts) {
  const object = JSON.parse(text) as Record<string, unknown>;
  const kind = String(object.kind);
  let project = projectors.get(kind);
  const type = typeOfKind.get(kind);
  if (project === undefined && type !== undefined)
    projectors.set(kind, (project = projectionFor(type)));
  if (project !== undefined) fleet.push(project(object));
}
fleetTexts.length = 0;
const fleetMiB = heapMiB() - beforeFleet;
console.log(
  `fleet projections:      ${fleetMiB.toFixed(1)} MiB heap for ${fleet.length.toLocaleString('en-US')} objects of ${projectors.size} kinds (${FLEET_WORKLOADS.toLocaleString('en-US')} workloads, with their pods, Services, EndpointSlices, PDBs, HPAs, nodes)`,
);

/**
 * An old revision of a Deployment as the API server sends it: a ReplicaSet scaled to zero, which
 * the Deployment keeps for a rollback (revisionHistoryLimit, 10 by default).
 */
function oldRevision(i: number): Record<string, unknown> {
  const deployment = Math.floor(i / REVISIONS);
  const app = `service-${deployment}`;
  const hash = (0x5d8f0000 + i).toString(16).slice(0, 10);
  const labels = {
    'app.kubernetes.io/name': app,
    team: `team-${deployment % 50}`,
    'pod-template-hash': hash,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${app}-${hash}`,
      namespace: `team-${deployment % 50}`,
      uid: `7c1e${i.toString(16).padStart(4, '0')}-1c2d-4e5f-8a9b-${i.toString(16).padStart(12, '0')}`,
      resourceVersion: String(200_000 + i),
      generation: 4,
      creationTimestamp: '2026-10-01T10:00:00Z',
      labels,
      annotations: {
        'deployment.kubernetes.io/desired-replicas': '10',
        'deployment.kubernetes.io/max-replicas': '13',
        'deployment.kubernetes.io/revision': String((i % REVISIONS) + 1),
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: app,
          uid: `0d3b${deployment.toString(16).padStart(4, '0')}-1c2d-4e5f-8a9b-000000000000`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update' }],
    },
    spec: {
      replicas: 0,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { containers: [{ name: 'app', image: `shop/${app}:${i % REVISIONS}` }] },
      },
    },
    status: { replicas: 0, observedGeneration: 4 },
  };
}

fleet.length = 0;

// Each parsed from its own JSON text, projected, and held as the cache and the builder's input
// would hold it; then counted against keptFor, which leaves such ReplicaSets out of the cache.
const REVISIONS = 10;
const projectReplicaSet = projectionFor(RESOURCES.replicasets);
const keepReplicaSet = keptFor(RESOURCES.replicasets);
const beforeRevisions = heapMiB();
// One object read after measuring, so that both stay alive until then (see above).
const held = { cache: new Map<string, Projected>(), input: new IncrementalInput() };
let leftOut = 0;
for (let i = 0; i < FLEET_WORKLOADS * REVISIONS; i++) {
  const raw = JSON.parse(JSON.stringify(oldRevision(i))) as Record<string, unknown>;
  const projected = projectReplicaSet(raw);
  if (keepReplicaSet?.(projected, raw) === false) leftOut++;
  held.cache.set(`${projected.metadata.namespace ?? ''}/${projected.metadata.name}`, projected);
  held.input.set(projected);
}
held.input.prepare();
const revisionsMiB = heapMiB() - beforeRevisions;
console.log(
  `old ReplicaSets:        ${revisionsMiB.toFixed(1)} MiB heap for ${held.cache.size.toLocaleString('en-US')} (${REVISIONS} per Deployment; ${((revisionsMiB * 2 ** 20) / held.cache.size).toFixed(0)} B each in the cache and the builder's input), were they cached; keptFor leaves out ${leftOut.toLocaleString('en-US')}`,
);
