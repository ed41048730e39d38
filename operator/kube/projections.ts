import { isRecord, type Obj } from '../../recommender/objects/read.ts';
import { canonicalDigest } from '../canonical.ts';
import { apiVersionOf, type ResourceType } from './client.ts';
import type { CachedObject } from './informer.ts';
import { SharedValues } from './shared-values.ts';

/**
 * Slim projections of what the cache keeps: only what the recommender reads, never
 * managedFields, so that 50,000 pods fit well under 256 MiB. Each projection is a plain object
 * in the shape of the API object (apiVersion, kind, metadata, spec, status), so the same
 * recommender code reads a `kubectl get -o yaml` dump and the cache alike. What many pods repeat
 * (labels, owner, container requests, status, node and namespace names) is kept once and shared,
 * frozen: readers must not change a cached object.
 */

export interface Projected extends CachedObject {
  apiVersion: string;
  kind: string;
  metadata: CachedObject['metadata'] & {
    generation?: number | undefined;
    labels?: Record<string, string> | undefined;
    annotations?: Record<string, string> | undefined;
    ownerReferences?:
      | {
          apiVersion: string;
          kind: string;
          name: string;
          uid: string;
          controller?: boolean;
        }[]
      | undefined;
    deletionTimestamp?: string;
  };
  spec?: Obj | undefined;
  status?: Obj | undefined;
  [field: string]: unknown;
}

/** Copies only the listed keys that are present. */
function pick(source: unknown, keys: readonly string[]): Obj | undefined {
  if (!isRecord(source)) return undefined;
  const out: Obj = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

/** Annotations that are large and never read: kubectl's copy of the last applied object. */
const DROPPED_ANNOTATIONS = new Set(['kubectl.kubernetes.io/last-applied-configuration']);

/**
 * What each resource type's projection shares among its objects; `undefined` for types whose
 * objects seldom repeat a value, where a shared table would only cost.
 */
type Sharing = SharedValues | undefined;

/** A string field, or undefined. */
function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * The metadata kept, every field but the rare deletionTimestamp always set (undefined when
 * absent): fields added one by one would cost each object a second block, tens of bytes for
 * each of 50,000 pods. A pod's uid is not kept (`keepUid` false): nothing reads it, and it is
 * 56 bytes of each pod.
 */
function slimMetadata(metadata: unknown, shared: Sharing, keepUid: boolean): Projected['metadata'] {
  const m = isRecord(metadata) ? metadata : {};
  const annotations = isRecord(m.annotations)
    ? Object.entries(m.annotations as Record<string, string>).filter(
        ([key]) => !DROPPED_ANNOTATIONS.has(key),
      )
    : [];
  const out: Projected['metadata'] = {
    name: text(m.name) ?? '',
    namespace: shareText(shared, text(m.namespace)),
    uid: keepUid ? text(m.uid) : undefined,
    resourceVersion: text(m.resourceVersion),
    generation: typeof m.generation === 'number' ? m.generation : undefined,
    labels: isRecord(m.labels) ? share(shared, m.labels as Record<string, string>) : undefined,
    annotations:
      annotations.length > 0 ? share(shared, Object.fromEntries(annotations)) : undefined,
    ownerReferences: Array.isArray(m.ownerReferences)
      ? share(
          shared,
          (m.ownerReferences as Obj[]).map(
            (ref) =>
              pick(ref, ['apiVersion', 'kind', 'name', 'uid', 'controller']) as NonNullable<
                Projected['metadata']['ownerReferences']
              >[number],
          ),
        )
      : undefined,
  };
  const deletionTimestamp = text(m.deletionTimestamp);
  if (deletionTimestamp !== undefined) out.deletionTimestamp = deletionTimestamp;
  return out;
}

function share<T extends object>(shared: Sharing, value: T): T {
  return shared === undefined ? value : shared.share(value);
}

/** A string many objects repeat (a node's, a zone's, a namespace's name), as its one shared copy. */
function shareText<T>(shared: Sharing, value: T): T {
  return shared === undefined || typeof value !== 'string' ? value : (shared.text(value) as T);
}

/** A running pod's containers: only what its requests are computed from (the template has the rest). */
function slimContainers(containers: unknown): Obj[] | undefined {
  if (!Array.isArray(containers)) return undefined;
  return (containers as unknown[]).map((container) => {
    const kept = pick(container, ['name', 'restartPolicy']) ?? {};
    const requests =
      isRecord(container) && isRecord(container.resources)
        ? container.resources.requests
        : undefined;
    return requests === undefined ? kept : { ...kept, resources: { requests } };
  });
}

type Projector = (
  object: Obj,
  shared: Sharing,
  metadata: Projected['metadata'],
) => { spec?: Obj | undefined; status?: Obj | undefined; extra?: Obj };

/** The controlling owner, or the only owner (as the builder reads owner references). */
export function controllerOf(o: {
  metadata: Projected['metadata'];
}): { kind: string; name: string } | undefined {
  const refs = o.metadata.ownerReferences ?? [];
  return refs.find((ref) => ref.controller === true) ?? (refs.length === 1 ? refs[0] : undefined);
}

/**
 * A recommendation's status without what Apply writes (status.applied): what the recommendation
 * controller sets, and compares to tell whether to write.
 */
export function comparableStatus(status: unknown): Obj {
  if (!isRecord(status)) return {};
  const { applied: _, ...rest } = status;
  return rest;
}

/**
 * The digest of a cached recommendation's comparable status. The cache keeps it instead of the
 * status (a few KB of reasons and patches for each workload), which no reader needs but to
 * compare it.
 */
export function storedStatusDigest(wrec: Projected | undefined): string | undefined {
  return typeof wrec?.statusDigest === 'string' ? wrec.statusDigest : undefined;
}

const WORKLOAD_STATUS = [
  'replicas',
  'readyReplicas',
  'availableReplicas',
  'desiredNumberScheduled',
  'numberReady',
  'startTime',
  'completionTime',
  'active',
  'succeeded',
  'failed',
  'lastScheduleTime',
  'observedGeneration',
];

/**
 * What the facts (recommender/objects/templates.ts) and the image look-ups read of a pod
 * template's spec and of its containers; the rest (env, commands, mounts, security contexts,
 * the API server's defaults) is most of a template and is never read. A reader of another field
 * adds it here: the commerce dump's test compares the facts of projections and whole objects.
 */
const TEMPLATE_SPEC_FIELDS = [
  'containers',
  'initContainers',
  'volumes',
  'nodeSelector',
  'affinity',
  'tolerations',
  'topologySpreadConstraints',
  'terminationGracePeriodSeconds',
  'priorityClassName',
  'imagePullSecrets',
];
const TEMPLATE_CONTAINER_FIELDS = [
  'name',
  'image',
  'resources',
  'readinessProbe',
  'lifecycle',
  'ports',
  'restartPolicy',
];
/** A volume's name and what tells its kind (the facts call any other source `other`). */
const TEMPLATE_VOLUME_FIELDS = ['name', 'hostPath', 'emptyDir', 'persistentVolumeClaim'];

function slimTemplate(template: Obj): Obj {
  const spec = pick(template.spec, TEMPLATE_SPEC_FIELDS) ?? {};
  for (const field of ['containers', 'initContainers'])
    if (Array.isArray(spec[field]))
      spec[field] = (spec[field] as unknown[]).map((c) => pick(c, TEMPLATE_CONTAINER_FIELDS) ?? c);
  if (Array.isArray(spec.volumes))
    spec.volumes = (spec.volumes as unknown[]).map((v) => pick(v, TEMPLATE_VOLUME_FIELDS) ?? v);
  return { metadata: pick(template.metadata, ['labels', 'annotations']), spec };
}

/** A workload's spec with its pod template (a CronJob's, in its Job template) slimmed. */
function workloadSpec(spec: unknown): Obj | undefined {
  if (!isRecord(spec)) return undefined;
  const out: Obj = { ...spec };
  if (isRecord(spec.template)) out.template = slimTemplate(spec.template);
  const job = isRecord(spec.jobTemplate) ? spec.jobTemplate : undefined;
  if (job !== undefined && isRecord(job.spec) && isRecord(job.spec.template))
    out.jobTemplate = { ...job, spec: { ...job.spec, template: slimTemplate(job.spec.template) } };
  return out;
}

/** Workload controllers keep their spec (the pod template is what kopek judges) and a few status counts. */
function workloadProjection(o: Obj): { spec?: Obj | undefined; status?: Obj | undefined } {
  return { spec: workloadSpec(o.spec), status: pick(o.status, WORKLOAD_STATUS) };
}

/** The kinds whose objects repeat one another's values: pods (by the ten), their endpoints. */
const SHARING_KINDS = new Set(['Pod', 'EndpointSlice']);

const PROJECTORS: Record<string, Projector> = {
  Pod: (o, shared) => {
    const spec = isRecord(o.spec) ? o.spec : {};
    const status = isRecord(o.status) ? o.status : {};
    const conditions = Array.isArray(status.conditions)
      ? (status.conditions as Obj[])
          .filter((c) => c.type === 'Ready')
          .map((c) => pick(c, ['type', 'status']))
      : undefined;
    const containers = slimContainers(spec.containers);
    const initContainers = slimContainers(spec.initContainers);
    // overhead: a RuntimeClass's (Kata, gVisor), which the pod's requests count. The scheduling
    // fields the facts read come from the workload's template, not from its pods.
    const kept = pick(spec, ['nodeName', 'overhead']) ?? {};
    for (const key of Object.keys(kept)) {
      const value = kept[key];
      kept[key] = isRecord(value) ? share(shared, value) : shareText(shared, value);
    }
    return {
      spec: {
        ...kept,
        containers: containers && share(shared, containers),
        initContainers: initContainers && share(shared, initContainers),
      },
      status: share(shared, { ...pick(status, ['phase']), ...(conditions ? { conditions } : {}) }),
    };
  },
  Node: (o) => {
    const status = isRecord(o.status) ? o.status : {};
    return {
      spec: pick(o.spec, ['taints', 'unschedulable', 'providerID']),
      status: {
        ...pick(status, ['capacity', 'allocatable']),
        nodeInfo: pick(status.nodeInfo, ['kubeletVersion', 'architecture', 'operatingSystem']),
      },
    };
  },
  Namespace: () => ({}),
  Service: (o) => ({
    spec: pick(o.spec, [
      'selector',
      'clusterIP',
      'type',
      'trafficDistribution',
      'ports',
      'internalTrafficPolicy',
    ]),
  }),
  // Of an endpoint, the facts read its zone and whether it is ready (recommender/objects/
  // services.ts): that leaves a handful of distinct endpoints, each kept once. Its pod (targetRef,
  // with a uid) and node made an endpoint a few hundred bytes of its own.
  EndpointSlice: (o, shared) => ({
    extra: {
      addressType: o.addressType,
      endpoints: Array.isArray(o.endpoints)
        ? (o.endpoints as Obj[]).map((e) => share(shared, pick(e, ['conditions', 'zone']) ?? {}))
        : [],
    },
  }),
  PersistentVolumeClaim: (o) => ({
    spec: pick(o.spec, ['volumeName', 'storageClassName', 'accessModes']),
  }),
  // Enough to tell a local or a zonal (EBS) volume: the CSI driver's name, not its attributes.
  PersistentVolume: (o) => {
    const spec = pick(o.spec, [
      'local',
      'hostPath',
      'nodeAffinity',
      'accessModes',
      'storageClassName',
      'awsElasticBlockStore',
    ]);
    const driver = isRecord(o.spec) && isRecord(o.spec.csi) ? o.spec.csi.driver : undefined;
    return { spec: driver === undefined ? spec : { ...spec, csi: { driver } } };
  },
  // Its provisioner tells an EBS volume of a claim whose PersistentVolume does not say; the
  // default-class annotation stays in the metadata.
  StorageClass: (o) => ({ extra: { provisioner: o.provisioner } }),
  PodDisruptionBudget: (o) => ({
    spec: pick(o.spec, ['selector', 'minAvailable', 'maxUnavailable']),
    status: pick(o.status, ['disruptionsAllowed', 'currentHealthy', 'expectedPods']),
  }),
  HorizontalPodAutoscaler: (o) => ({
    spec: pick(o.spec, ['scaleTargetRef', 'minReplicas', 'maxReplicas']),
    status: pick(o.status, ['currentReplicas', 'desiredReplicas']),
  }),
  // A Deployment's or Rollout's ReplicaSets (the current one and up to revisionHistoryLimit old
  // ones, each with its pod template) only lead pods to their workload: their metadata is enough.
  ReplicaSet: (o, _shared, metadata) => {
    const owner = controllerOf({ metadata })?.kind;
    return owner === 'Deployment' || owner === 'Rollout' ? {} : workloadProjection(o);
  },
  // What the reconciles read: spec (targetRef, approvals), the conditions (their transition
  // times), what Apply wrote, and the digest of the rest.
  WorkloadRecommendation: (o) => ({
    spec: isRecord(o.spec) ? o.spec : undefined,
    status: pick(o.status, ['applied', 'conditions']),
    extra: { statusDigest: canonicalDigest(comparableStatus(o.status)) },
  }),
};

/** Whether a status count counts any pod: absent is none. */
function counts(count: unknown): boolean {
  return count !== undefined && count !== 0;
}

/**
 * Which objects of a type the cache keeps (undefined: all). Not a Deployment's or Rollout's
 * ReplicaSet that wants no pod and counts none, running or terminating (docs/decisions/0028): the
 * old revisions kept for rollbacks (10 per Deployment by default), most of the ReplicaSets of a
 * cluster that rolls out often. Where terminating pods are not counted (before Kubernetes 1.35,
 * or with its DeploymentReplicaSetTerminatingReplicas feature off), a pod still on its way out
 * finds its workload by its hash label (workloadOfPod) and its ReplicaSet's name (podWorkloads);
 * Apply mode lists ReplicaSets from the API server.
 */
export function keptFor(
  type: ResourceType,
): ((object: Projected, raw: Obj) => boolean) | undefined {
  if (type.kind !== 'ReplicaSet') return undefined;
  return (object, raw) => {
    const owner = controllerOf(object)?.kind;
    if (owner !== 'Deployment' && owner !== 'Rollout') return true;
    const wanted = isRecord(raw.spec) ? raw.spec.replicas : undefined;
    const status = isRecord(raw.status) ? raw.status : {};
    // spec.replicas defaults to 1; an absent status count is none. status.replicas leaves out
    // the pods being deleted, which terminatingReplicas counts (written from Kubernetes 1.35 on,
    // unless the DeploymentReplicaSetTerminatingReplicas feature is off).
    return wanted !== 0 || counts(status.replicas) || counts(status.terminatingReplicas);
  };
}

/** The projection function for a resource type. */
export function projectionFor(type: ResourceType): (object: Obj) => Projected {
  const apiVersion = apiVersionOf(type);
  const projector: Projector =
    PROJECTORS[type.kind] ??
    (type.group === 'kopek.dev'
      ? (o) => ({
          spec: isRecord(o.spec) ? o.spec : undefined,
          status: isRecord(o.status) ? o.status : undefined,
        })
      : workloadProjection);
  const shared = SHARING_KINDS.has(type.kind) ? new SharedValues() : undefined;
  return (object) => {
    const metadata = slimMetadata(object.metadata, shared, type.kind !== 'Pod');
    const { spec, status, extra } = projector(object, shared, metadata);
    // One literal with spec and status (undefined when absent): one block per object, but for
    // the fields of `extra` past the first (an EndpointSlice's second takes a block of its own).
    // No projector puts spec or status in `extra`.
    return { apiVersion, kind: type.kind, metadata, spec, status, ...extra };
  };
}
