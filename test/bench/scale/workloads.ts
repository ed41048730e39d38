/**
 * The workloads of the scale benchmark: a deterministic, EKS-like mix at any size. W workloads
 * (Deployments, StatefulSets, CronJobs, a few DaemonSets) in teams' namespaces, P pods in all
 * (the DaemonSets' pods on every node included), a few hundred distinct images shared between
 * workloads, and Services, PodDisruptionBudgets and HorizontalPodAutoscalers in the proportions
 * of a platform of services. Pure: the caller creates the objects.
 */
import { apportion, scaledFleet } from '../../cluster/fleet.ts';
import type { SeededImage } from '../../registry/seed.ts';
import { rng } from '../../support/random.ts';
import { volumesFor } from '../../support/volumes.ts';

type Obj = Record<string, unknown>;

export interface ScaleSizes {
  nodes: number;
  workloads: number;
  pods: number;
}

/** A workload the benchmark created, as the change phase and the checks need it. */
export interface WorkloadRef {
  namespace: string;
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'CronJob';
  name: string;
  /** Pods it runs (DaemonSets: one per node). */
  pods: number;
  /** kopek analyses it (not annotated kopek.dev/ignore). */
  analysed: boolean;
  hpa: boolean;
  /** Created with the annotation kopek.dev/spot: never. */
  spotNever: boolean;
  /** Index of its main container's image in the image list. */
  image: number;
}

export interface ScaleCluster {
  namespaces: Obj[];
  /** Pre-bound PersistentVolumes for the StatefulSets' claims. */
  volumes: Obj[];
  workloads: Obj[];
  services: Obj[];
  pdbs: Obj[];
  hpas: Obj[];
  refs: WorkloadRef[];
  /** Pods the controllers will run: every replica plus the DaemonSets' pod on each node. */
  expectedPods: number;
  /** Endpoints each Service should get once every pod is ready. */
  serviceEndpoints: { namespace: string; name: string; endpoints: number }[];
  /** Every image the workloads name. */
  images: string[];
}

/** Workloads per team namespace. */
const WORKLOADS_PER_NAMESPACE = 20;
/** At most this many DaemonSets (node agents: logs, metrics, CNI, CSI, security). */
const MAX_DAEMONSETS = 5;
/** DaemonSets' pods take at most this share of all pods. */
const DAEMONSET_POD_SHARE = 0.2;
export const DAEMONSET_NAMESPACE = 'platform-agents';
/** The first team's namespace, where the example policy no-spot-for-payments turns Spot off. */
export const NO_SPOT_NAMESPACE = 'payments';
/** Yearly, so no Job starts during a run and the steady state stays steady. */
const CRON_SCHEDULE = '17 4 1 1 *';

/** A few hundred distinct images at full size; fewer for small runs (at least 5). */
export function defaultImageCount(workloads: number): number {
  return Math.min(300, Math.max(5, Math.round(workloads * 0.06)));
}

/** How many DaemonSets a cluster of this size gets, so their pods stay a fifth of all pods. */
export function daemonSetCount(sizes: ScaleSizes): number {
  const byPods = Math.floor((sizes.pods * DAEMONSET_POD_SHARE) / sizes.nodes);
  return Math.max(0, Math.min(MAX_DAEMONSETS, byPods, sizes.workloads - 1));
}

function isMultiArch(image: SeededImage): boolean {
  return image.platforms.some((platform) => platform.startsWith('linux/arm64'));
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

interface TemplateOptions {
  name: string;
  namespace: string;
  image: SeededImage;
  sidecar?: SeededImage;
  init?: SeededImage;
  cpu: string;
  memory: string;
  readiness: boolean;
  grace: number;
  preferSpot: boolean;
  spread: boolean;
  dataNodes: boolean;
}

function podTemplate(o: TemplateOptions): Obj {
  const labels = { 'app.kubernetes.io/name': o.name, 'app.kubernetes.io/part-of': o.namespace };
  const memoryMi = Number.parseInt(o.memory, 10);
  const app: Obj = {
    name: 'app',
    image: o.image.image,
    ports: [{ name: 'http', containerPort: 8080 }],
    env: [
      { name: 'SERVICE_NAME', value: o.name },
      { name: 'TEAM', value: o.namespace },
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability:4317' },
    ],
    resources: {
      requests: { cpu: o.cpu, memory: o.memory },
      limits: { memory: `${memoryMi * 2}Mi` },
    },
    ...(o.readiness
      ? {
          readinessProbe: {
            httpGet: { path: '/ready', port: 8080 },
            periodSeconds: 10,
          },
        }
      : {}),
  };
  const containers: Obj[] = [app];
  if (o.sidecar)
    containers.push({
      name: 'envoy',
      image: o.sidecar.image,
      resources: { requests: { cpu: '10m', memory: '32Mi' } },
    });
  const nodeSelector: Record<string, string> = {};
  if (!isMultiArch(o.image)) nodeSelector['kubernetes.io/arch'] = 'amd64';
  if (o.dataNodes) nodeSelector.dedicated = 'data';
  const spec: Obj = {
    containers,
    terminationGracePeriodSeconds: o.grace,
    ...(o.init
      ? {
          initContainers: [
            { name: 'migrate', image: o.init.image, resources: { requests: { cpu: '10m' } } },
          ],
        }
      : {}),
    ...(Object.keys(nodeSelector).length > 0 ? { nodeSelector } : {}),
    ...(o.dataNodes
      ? { tolerations: [{ key: 'dedicated', value: 'data', effect: 'NoSchedule' }] }
      : {}),
    ...(o.preferSpot
      ? {
          affinity: {
            nodeAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 50,
                  preference: {
                    matchExpressions: [
                      { key: 'karpenter.sh/capacity-type', operator: 'In', values: ['spot'] },
                    ],
                  },
                },
              ],
            },
          },
        }
      : {}),
    ...(o.spread
      ? {
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: 'topology.kubernetes.io/zone',
              whenUnsatisfiable: 'ScheduleAnyway',
              labelSelector: { matchLabels: { 'app.kubernetes.io/name': o.name } },
            },
          ],
        }
      : {}),
  };
  return { metadata: { labels }, spec };
}

const SELECTOR_LABEL = 'app.kubernetes.io/name';

/** The spec of a workload of `kind` around its pod template. */
function workloadSpec(
  kind: WorkloadRef['kind'],
  name: string,
  replicas: number,
  template: Obj,
  withVolume: boolean,
): Obj {
  const selector = { matchLabels: { [SELECTOR_LABEL]: name } };
  switch (kind) {
    case 'CronJob': {
      const { spec, ...rest } = template as { spec: Obj };
      const podTemplate = { ...rest, spec: { ...spec, restartPolicy: 'OnFailure' } };
      return {
        schedule: CRON_SCHEDULE,
        jobTemplate: { spec: { backoffLimit: 3, template: podTemplate } },
      };
    }
    case 'StatefulSet': {
      const claim = {
        metadata: { name: 'data' },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '20Gi' } } },
      };
      return {
        replicas,
        serviceName: name,
        // Replicas start together, not one after another: the setup is quicker, kopek sees the same.
        podManagementPolicy: 'Parallel',
        selector,
        template,
        ...(withVolume ? { volumeClaimTemplates: [claim] } : {}),
      };
    }
    case 'DaemonSet':
      return { selector, template };
    case 'Deployment':
      return { replicas, selector, template };
  }
}

/**
 * The k-th ClusterIP of the harness's 10.96.0.0/16 (from 10.96.1.0; 10.96.0.1 is the API's).
 * Explicit, because the API server allocates dynamic ones one at a time (a lock held across a
 * nested create of an IPAddress): about one a second on a busy two-core machine.
 */
export function clusterIP(k: number): string {
  const n = 256 + k;
  if (n >= 65_535) throw new Error(`no ClusterIP left for Service ${k}`);
  return `10.96.${Math.floor(n / 256)}.${n % 256}`;
}

function service(
  namespace: string,
  name: string,
  ip: string | undefined,
  preferSameZone: boolean,
): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels: { [SELECTOR_LABEL]: name } },
    spec: {
      selector: { [SELECTOR_LABEL]: name },
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      clusterIP: ip ?? 'None',
      ...(preferSameZone ? { trafficDistribution: 'PreferSameZone' } : {}),
    },
  };
}

function pdb(namespace: string, name: string, maxUnavailable: boolean): Obj {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels: { [SELECTOR_LABEL]: name } },
      ...(maxUnavailable ? { maxUnavailable: 1 } : { minAvailable: '50%' }),
    },
  };
}

function hpa(namespace: string, name: string, replicas: number): Obj {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: replicas,
      maxReplicas: replicas * 3,
      metrics: [
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
        },
      ],
    },
  };
}

function daemonSet(name: string, image: SeededImage): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name, namespace: DAEMONSET_NAMESPACE, labels: { [SELECTOR_LABEL]: name } },
    spec: workloadSpec(
      'DaemonSet',
      name,
      0,
      {
        metadata: { labels: { [SELECTOR_LABEL]: name } },
        spec: {
          containers: [
            {
              name: 'agent',
              image: image.image,
              resources: { requests: { cpu: '20m', memory: '50Mi' } },
            },
          ],
          tolerations: [{ operator: 'Exists' }],
        },
      },
      false,
    ),
  };
}

/** Every image the workloads' pod templates name, sorted. */
function imagesOf(workloads: readonly Obj[]): string[] {
  const named = new Set<string>();
  for (const workload of workloads) {
    const spec = workload.spec as {
      template?: { spec: Obj };
      jobTemplate?: { spec: { template: { spec: Obj } } };
    };
    const podSpec = (spec.template ?? spec.jobTemplate?.spec.template)?.spec as {
      containers: { image: string }[];
      initContainers?: { image: string }[];
    };
    for (const container of [...podSpec.containers, ...(podSpec.initContainers ?? [])])
      named.add(container.image);
  }
  return [...named].sort();
}

/** A pod template with the variety of a real platform: sizes, probes, sidecars, placement. */
function randomTemplate(
  random: () => number,
  workload: { kind: WorkloadRef['kind']; i: number; name: string; namespace: string },
  image: (index: number) => SeededImage,
  dataPool: boolean,
): Obj {
  const { kind, i, name, namespace } = workload;
  const chance = (p: number): boolean => random() < p;
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
  const stateful = kind === 'StatefulSet';
  const deployment = kind === 'Deployment';
  return podTemplate({
    name,
    namespace,
    image: image(i),
    ...(deployment && chance(0.4) ? { sidecar: image(0) } : {}),
    ...(chance(0.1) ? { init: image(1) } : {}),
    cpu: pick(['25m', '50m', '100m', '100m', '200m', '250m']),
    memory: pick(['64Mi', '128Mi', '256Mi', '256Mi', '512Mi']),
    readiness: chance(0.8),
    grace: stateful ? pick([60, 120, 300]) : pick([30, 30, 30, 60, 120]),
    preferSpot: deployment && chance(0.2),
    spread: kind !== 'CronJob' && chance(0.3),
    dataNodes: dataPool && stateful && i % 2 === 0,
  });
}

/** 1% of Deployments opt out (kopek.dev/ignore), 2% refuse Spot. */
function annotationsAt(i: number, kind: WorkloadRef['kind']): Record<string, string> {
  if (kind !== 'Deployment') return {};
  if (i % 100 === 99) return { 'kopek.dev/ignore': 'true' };
  return i % 50 === 11 ? { 'kopek.dev/spot': 'never' } : {};
}

/** Kinds: 4% CronJobs (no pods while the benchmark runs), 6% StatefulSets, the rest Deployments. */
function kindAt(i: number): WorkloadRef['kind'] {
  if (i % 25 === 7) return 'CronJob';
  return [3, 28, 41].includes(i % 50) ? 'StatefulSet' : 'Deployment';
}

/**
 * Each non-DaemonSet workload's kind, and the pods each serving one gets beyond its first: a long
 * tail (lognormal weights) over a floor of one pod each.
 */
function replicaPlan(
  sizes: ScaleSizes,
  daemonSets: number,
  random: () => number,
): { kinds: WorkloadRef['kind'][]; extra: number[] } {
  const { nodes, workloads, pods } = sizes;
  const kinds = Array.from({ length: workloads - daemonSets }, (_, i) => kindAt(i));
  const serving = kinds.filter((kind) => kind !== 'CronJob').length;
  const servingPods = pods - daemonSets * nodes;
  if (servingPods < serving)
    throw new Error(
      `${pods} pods cannot fill ${serving} Deployments and StatefulSets with at least one pod each (DaemonSets take ${daemonSets * nodes} on ${nodes} nodes); ask for more pods or fewer workloads`,
    );
  const weights = Array.from({ length: serving }, () => {
    const gaussian = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.exp(1.1 * gaussian);
  });
  return { kinds, extra: apportion(servingPods - serving, weights) };
}

/** The node agents: one pod on every node each, on multi-arch images as a mixed fleet needs. */
function addDaemonSets(
  out: ScaleCluster,
  nodes: number,
  count: number,
  images: readonly SeededImage[],
  image: (index: number) => SeededImage,
): void {
  const multiArch = images.filter(isMultiArch);
  for (let d = 0; d < count; d++) {
    const name =
      ['log-shipper', 'node-metrics', 'cni-agent', 'csi-node', 'runtime-security'][d] ??
      `agent-${d}`;
    const agentImage =
      multiArch.length > 0 ? (multiArch[d % multiArch.length] ?? image(d)) : image(d);
    out.workloads.push(daemonSet(name, agentImage));
    out.refs.push({
      namespace: DAEMONSET_NAMESPACE,
      kind: 'DaemonSet',
      name,
      pods: nodes,
      analysed: true,
      hpa: false,
      spotNever: false,
      image: images.indexOf(agentImage),
    });
    out.expectedPods += nodes;
  }
}

/**
 * The objects of a cluster of `sizes`, naming `images` (each at least once when there are
 * enough workloads). Throws when the sizes cannot make sense (fewer pods than workloads).
 */
export function scaleCluster(sizes: ScaleSizes, images: readonly SeededImage[]): ScaleCluster {
  const { nodes, workloads } = sizes;
  const daemonSets = daemonSetCount(sizes);
  const others = workloads - daemonSets;
  const random = rng(20261111);
  const chance = (p: number): boolean => random() < p;
  const [first] = images;
  if (first === undefined) throw new Error('the benchmark needs at least one image');
  const image = (index: number): SeededImage => images[index % images.length] ?? first;

  // The tainted data pool takes half the StatefulSets once it has a node in every zone (each
  // replica's volume is in its own zone); volumes at all once the fleet spans the zones.
  const fleet = scaledFleet(nodes);
  const dataPool = (fleet.pools.find((pool) => pool.labels?.dedicated === 'data')?.count ?? 0) >= 3;
  const allZones = nodes >= 3;
  const { kinds, extra } = replicaPlan(sizes, daemonSets, random);

  const namespaceCount = Math.max(1, Math.ceil(others / WORKLOADS_PER_NAMESPACE));
  const namespaceNames = Array.from({ length: namespaceCount }, (_, i) =>
    i === 0 ? NO_SPOT_NAMESPACE : `team-${pad(i, 3)}`,
  );
  const out: ScaleCluster = {
    namespaces: [...namespaceNames, ...(daemonSets > 0 ? [DAEMONSET_NAMESPACE] : [])].map(
      (name) => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { team: name } },
      }),
    ),
    volumes: [],
    workloads: [],
    services: [],
    pdbs: [],
    hpas: [],
    refs: [],
    expectedPods: 0,
    serviceEndpoints: [],
    images: [],
  };

  let serveIndex = 0;
  for (let i = 0; i < others; i++) {
    const kind = kinds[i] ?? 'Deployment';
    const namespace = namespaceNames[i % namespaceCount] ?? NO_SPOT_NAMESPACE;
    const name = `${{ Deployment: 'svc', StatefulSet: 'db', CronJob: 'batch', DaemonSet: 'agent' }[kind]}-${pad(i, 5)}`;
    const replicas = kind === 'CronJob' ? 0 : 1 + (extra[serveIndex++] ?? 0);
    const stateful = kind === 'StatefulSet';
    const deployment = kind === 'Deployment';
    const template = randomTemplate(random, { kind, i, name, namespace }, image, dataPool);
    const labels: Record<string, string> = { [SELECTOR_LABEL]: name, team: namespace };
    if (chance(0.15)) labels['argocd.argoproj.io/instance'] = `${namespace}-${name}`;
    const annotations = annotationsAt(i, kind);
    const ignored = annotations['kopek.dev/ignore'] === 'true';
    out.workloads.push({
      apiVersion: kind === 'CronJob' ? 'batch/v1' : 'apps/v1',
      kind,
      metadata: {
        name,
        namespace,
        labels,
        ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
      },
      spec: workloadSpec(kind, name, replicas, template, allZones && i % 4 === 3),
    });
    const autoscaled = deployment && replicas >= 2 && chance(0.3);
    out.refs.push({
      namespace,
      kind,
      name,
      pods: replicas,
      analysed: !ignored,
      hpa: autoscaled,
      spotNever: annotations['kopek.dev/spot'] === 'never',
      image: i % images.length,
    });
    out.expectedPods += replicas;
    if (kind === 'CronJob') continue;
    if (stateful || chance(0.7)) {
      const ip = stateful ? undefined : clusterIP(out.services.length);
      out.services.push(service(namespace, name, ip, !stateful && chance(0.1)));
      out.serviceEndpoints.push({ namespace, name, endpoints: replicas });
    }
    if (replicas >= 2 && chance(0.5)) out.pdbs.push(pdb(namespace, name, i % 2 === 0));
    if (autoscaled) out.hpas.push(hpa(namespace, name, replicas));
  }

  addDaemonSets(out, nodes, daemonSets, images, image);
  out.volumes = volumesFor(out.workloads);
  out.images = imagesOf(out.workloads);
  return out;
}

/** What names an old revision of `oldRevisions` after its Deployment's name: `-old<k>`. */
const OLD_REVISION_MARK = 'old';

const OLD_REVISION_NAME = new RegExp(`-${OLD_REVISION_MARK}\\d+[0-9a-f]{6}$`);

/** Whether a ReplicaSet's name is one `oldRevisions` gives. */
export function isOldRevision(name: string): boolean {
  return OLD_REVISION_NAME.test(name);
}

/**
 * The old revisions a Deployment's controller leaves after rollouts: `count` ReplicaSets scaled to
 * zero, owned by the Deployment (as created, with its uid), each with the template of an older
 * image tag and the annotations the controller writes. Revisions 1 to `count`: the controller
 * numbers the current ReplicaSet after them.
 */
export function oldRevisions(deployment: Obj, count: number): Obj[] {
  const metadata = deployment.metadata as { name: string; namespace: string; uid: string };
  const spec = deployment.spec as { replicas?: number; selector: Obj; template: Obj };
  const template = spec.template as { metadata: { labels: Record<string, string> }; spec: Obj };
  const containers = (template.spec.containers ?? []) as Obj[];
  return Array.from({ length: count }, (_, k) => {
    // Unlike any hash the controller computes, so that it never takes one for the current one.
    const hash = `${OLD_REVISION_MARK}${k}${metadata.uid.replaceAll('-', '').slice(0, 6)}`;
    const labels = { ...template.metadata.labels, 'pod-template-hash': hash };
    return {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${metadata.name}-${hash}`,
        namespace: metadata.namespace,
        labels,
        annotations: {
          'deployment.kubernetes.io/desired-replicas': String(spec.replicas ?? 1),
          'deployment.kubernetes.io/max-replicas': String(Math.ceil((spec.replicas ?? 1) * 1.25)),
          'deployment.kubernetes.io/revision': String(k + 1),
        },
        ownerReferences: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            name: metadata.name,
            uid: metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        replicas: 0,
        selector: {
          matchLabels: {
            ...((spec.selector.matchLabels ?? {}) as Record<string, string>),
            'pod-template-hash': hash,
          },
        },
        template: {
          ...template,
          metadata: { ...template.metadata, labels },
          spec: {
            ...template.spec,
            containers: containers.map((c) => ({ ...c, image: `${String(c.image)}-old${k}` })),
          },
        },
      },
    };
  });
}
