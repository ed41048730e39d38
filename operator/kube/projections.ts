import { isRecord, type Obj } from '../../recommender/objects/read.ts';
import { apiVersionOf, type ResourceType } from './client.ts';
import type { CachedObject } from './informer.ts';

/**
 * Slim projections of what the cache keeps: only what the recommender reads, never
 * managedFields, so that 50,000 pods fit well under 256 MiB. Each projection is a plain object
 * in the shape of the API object (apiVersion, kind, metadata, spec, status), so the same
 * recommender code reads a `kubectl get -o yaml` dump and the cache alike.
 */

export interface Projected extends CachedObject {
  apiVersion: string;
  kind: string;
  metadata: CachedObject['metadata'] & {
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
    }[];
    deletionTimestamp?: string;
  };
  spec?: Obj;
  status?: Obj;
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

function slimMetadata(metadata: unknown): Projected['metadata'] {
  const m = isRecord(metadata) ? metadata : {};
  const out: Projected['metadata'] = { name: typeof m.name === 'string' ? m.name : '' };
  for (const key of ['namespace', 'uid', 'resourceVersion', 'deletionTimestamp'] as const) {
    if (typeof m[key] === 'string') out[key] = m[key];
  }
  if (typeof m.generation === 'number') out.generation = m.generation;
  if (isRecord(m.labels)) out.labels = m.labels as Record<string, string>;
  if (isRecord(m.annotations)) {
    const kept = Object.entries(m.annotations as Record<string, string>).filter(
      ([key]) => !DROPPED_ANNOTATIONS.has(key),
    );
    if (kept.length > 0) out.annotations = Object.fromEntries(kept);
  }
  if (Array.isArray(m.ownerReferences)) {
    out.ownerReferences = (m.ownerReferences as Obj[]).map(
      (ref) =>
        pick(ref, ['apiVersion', 'kind', 'name', 'uid', 'controller']) as NonNullable<
          Projected['metadata']['ownerReferences']
        >[number],
    );
  }
  return out;
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

type Projector = (object: Obj) => { spec?: Obj | undefined; status?: Obj | undefined; extra?: Obj };

const PROJECTORS: Record<string, Projector> = {
  Pod: (o) => {
    const spec = isRecord(o.spec) ? o.spec : {};
    const status = isRecord(o.status) ? o.status : {};
    const conditions = Array.isArray(status.conditions)
      ? (status.conditions as Obj[])
          .filter((c) => c.type === 'Ready')
          .map((c) => pick(c, ['type', 'status']))
      : undefined;
    return {
      spec: {
        ...pick(spec, ['nodeName', 'schedulerName', 'priorityClassName']),
        containers: slimContainers(spec.containers),
        initContainers: slimContainers(spec.initContainers),
      },
      status: { ...pick(status, ['phase']), ...(conditions ? { conditions } : {}) },
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
      'type',
      'trafficDistribution',
      'ports',
      'internalTrafficPolicy',
    ]),
  }),
  EndpointSlice: (o) => ({
    extra: {
      addressType: o.addressType,
      endpoints: Array.isArray(o.endpoints)
        ? (o.endpoints as Obj[]).map((e) =>
            pick(e, ['conditions', 'zone', 'nodeName', 'targetRef']),
          )
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
  PodDisruptionBudget: (o) => ({
    spec: pick(o.spec, ['selector', 'minAvailable', 'maxUnavailable']),
    status: pick(o.status, ['disruptionsAllowed', 'currentHealthy', 'expectedPods']),
  }),
  HorizontalPodAutoscaler: (o) => ({
    spec: pick(o.spec, ['scaleTargetRef', 'minReplicas', 'maxReplicas']),
    status: pick(o.status, ['currentReplicas', 'desiredReplicas']),
  }),
};

/** Workload controllers keep their whole spec (the pod template is what kopek judges) and a few status counts. */
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
      : (o) => ({
          spec: isRecord(o.spec) ? o.spec : undefined,
          status: pick(o.status, WORKLOAD_STATUS),
        }));
  return (object) => {
    const { spec, status, extra } = projector(object);
    const projected: Projected = {
      apiVersion,
      kind: type.kind,
      metadata: slimMetadata(object.metadata),
      ...extra,
    };
    if (spec !== undefined) projected.spec = spec;
    if (status !== undefined) projected.status = status;
    return projected;
  };
}
