/**
 * A workload's pod template → PodTemplateFacts: containers (with their requests, probes and
 * preStop sleeps), volumes (hostPath, local persistent volumes through PVC → PV), node
 * selector, affinity, tolerations and topology spread.
 */
import type {
  Affinity,
  ContainerFacts,
  NodeSelectorTerm,
  PodTemplateFacts,
  PreferredSchedulingTerm,
  Toleration,
  TopologySpreadFacts,
  VolumeFacts,
} from '../facts.ts';
import { parseQuantity } from '../quantity.ts';
import type { Index } from './index.ts';
import {
  describe,
  int,
  isRecord,
  obj,
  objectKey,
  objs,
  str,
  strings,
  strMap,
  type K8s,
  type Obj,
} from './read.ts';

/** The pod template of a workload, and the Job spec around it for Jobs and CronJobs. */
export function templateSource(w: K8s): { template: Obj; jobSpec?: Obj } | undefined {
  const spec = obj(w.raw.spec);
  if (w.kind === 'CronJob') {
    const jobSpec = obj(obj(spec.jobTemplate).spec);
    return isRecord(jobSpec.template) ? { template: jobSpec.template, jobSpec } : undefined;
  }
  if (!isRecord(spec.template)) return undefined;
  return w.kind === 'Job'
    ? { template: spec.template, jobSpec: spec }
    : { template: spec.template };
}

/**
 * A container's request for one resource (the limit when no request is set). `where` names the
 * container for a warning: made only then (it is asked for every container of every pod).
 */
export function resourceOf(
  c: Obj,
  resource: 'cpu' | 'memory',
  where: () => string,
  warnings: string[],
): number | undefined {
  const resources = obj(c.resources);
  // Kubernetes defaults a missing request to the limit.
  const raw = obj(resources.requests)[resource] ?? obj(resources.limits)[resource];
  if (raw === undefined) return undefined;
  const q = parseQuantity(raw);
  if (q === undefined || q < 0) {
    warnings.push(
      `${where()}: ${resource} request ${JSON.stringify(raw)} is not a quantity; counted as 0`,
    );
    return undefined;
  }
  return q;
}

function preStopSleep(c: Obj): number | undefined {
  const preStop = obj(obj(c.lifecycle).preStop);
  const sleep = int(obj(preStop.sleep).seconds);
  if (sleep !== undefined) return sleep;
  const command = strings(obj(preStop.exec).command).join(' ');
  const m = /(?:^|[\s;&|])sleep\s+(\d+(?:\.\d+)?)\b/.exec(command);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function containersOf(spec: Obj, where: string, warnings: string[]): ContainerFacts[] {
  const out: ContainerFacts[] = [];
  const add = (c: Obj, role: ContainerFacts['role']) => {
    const name = str(c.name) ?? '(unnamed)';
    const image = str(c.image);
    if (image === undefined) {
      warnings.push(`${where}: container ${name} has no image; skipped`);
      return;
    }
    const cw = (): string => `${where} container ${name}`;
    const fact: ContainerFacts = { name, image, role, readinessProbe: isRecord(c.readinessProbe) };
    const cpu = resourceOf(c, 'cpu', cw, warnings);
    const mem = resourceOf(c, 'memory', cw, warnings);
    const sleep = preStopSleep(c);
    if (cpu !== undefined) fact.cpuRequestCores = cpu;
    if (mem !== undefined) fact.memoryRequestBytes = mem;
    if (sleep !== undefined) fact.preStopSleepSeconds = sleep;
    const ports = objs(c.ports)
      .map((p) => int(p.containerPort))
      .filter((p) => p !== undefined);
    if (ports.length > 0) fact.ports = ports;
    out.push(fact);
  };
  for (const c of objs(spec.initContainers))
    add(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init');
  for (const c of objs(spec.containers)) add(c, 'main');
  return out;
}

/** Node labels a PersistentVolume's node affinity uses to pin it to a zone. */
const VOLUME_ZONE_KEYS = new Set([
  'topology.kubernetes.io/zone',
  'topology.ebs.csi.aws.com/zone',
  'failure-domain.beta.kubernetes.io/zone',
]);
/** Provisioners (CSI driver or in-tree) of EBS volumes, which live in one zone. */
const EBS_PROVISIONERS = new Set(['ebs.csi.aws.com', 'kubernetes.io/aws-ebs']);
/** Access modes that let one node at a time mount the volume. */
const SINGLE_NODE_MODES = new Set(['ReadWriteOnce', 'ReadWriteOncePod']);
const ANNOTATION_DEFAULT_CLASS = 'storageclass.kubernetes.io/is-default-class';

/**
 * The StorageClass a claim names, or the cluster's default one when it names none and is not
 * bound yet (Kubernetes gives the default only to claims waiting for a volume; a bound claim
 * without a class has a volume made by hand, which the default says nothing about).
 */
function storageClassOf(claimSpec: Obj, pvSpec: Obj, index: Index): K8s | undefined {
  const name = str(claimSpec.storageClassName) ?? str(pvSpec.storageClassName);
  if (name !== undefined) return index.byKey.get(objectKey('StorageClass', '', name));
  if (str(claimSpec.volumeName) !== undefined) return undefined;
  return index.byKind
    .get('StorageClass')
    ?.find((c) => c.meta.annotations[ANNOTATION_DEFAULT_CLASS] === 'true');
}

/**
 * Why a claim ties its pod to one zone and one node at a time (see VolumeFacts.zonalVolume):
 * its PersistentVolume's node affinity names a zone, the volume is EBS, or its StorageClass
 * provisions EBS. Undefined when the access modes let several nodes mount it, or nothing says so.
 */
function zonalVolumeOf(
  pvc: K8s | undefined,
  pv: K8s | undefined,
  index: Index,
): string | undefined {
  const claimSpec = obj(pvc?.raw.spec);
  const pvSpec = obj(pv?.raw.spec);
  const modes = [...strings(claimSpec.accessModes), ...strings(pvSpec.accessModes)];
  if (modes.length > 0 && !modes.some((m) => SINGLE_NODE_MODES.has(m))) return undefined;
  if (pv !== undefined) {
    const zones = objs(obj(obj(pvSpec.nodeAffinity).required).nodeSelectorTerms)
      .flatMap((t) => objs(t.matchExpressions))
      .filter((e) => VOLUME_ZONE_KEYS.has(str(e.key) ?? '') && str(e.operator) === 'In')
      .flatMap((e) => strings(e.values));
    if (zones.length > 0)
      return `PersistentVolume ${pv.meta.name} is pinned to zone ${[...new Set(zones)].join(', ')}`;
    const driver = str(obj(pvSpec.csi).driver);
    if (
      isRecord(pvSpec.awsElasticBlockStore) ||
      (driver !== undefined && EBS_PROVISIONERS.has(driver))
    )
      return `PersistentVolume ${pv.meta.name} is an EBS volume, which lives in one zone`;
  }
  const sc = storageClassOf(claimSpec, pvSpec, index);
  const provisioner = str(sc?.raw.provisioner);
  if (sc !== undefined && provisioner !== undefined && EBS_PROVISIONERS.has(provisioner))
    return `StorageClass ${sc.meta.name} provisions EBS volumes (${provisioner}), which live in one zone`;
  return undefined;
}

function volumesOf(spec: Obj, namespace: string, index: Index): VolumeFacts[] {
  return objs(spec.volumes).map((v) => {
    const name = str(v.name) ?? '(unnamed)';
    if (isRecord(v.hostPath)) return { name, kind: 'hostPath' };
    if (isRecord(v.emptyDir)) return { name, kind: 'emptyDir' };
    const claim = str(obj(v.persistentVolumeClaim).claimName);
    if (claim !== undefined) {
      const pvc = index.byKey.get(objectKey('PersistentVolumeClaim', namespace, claim));
      const pvName = str(obj(pvc?.raw.spec).volumeName);
      const pv =
        pvName === undefined
          ? undefined
          : index.byKey.get(objectKey('PersistentVolume', '', pvName));
      if (pv !== undefined && isRecord(obj(pv.raw.spec).local))
        return { name, kind: 'local', claimName: claim };
      const zonalVolume = zonalVolumeOf(pvc, pv, index);
      return zonalVolume === undefined
        ? { name, kind: 'persistentVolumeClaim', claimName: claim }
        : { name, kind: 'persistentVolumeClaim', claimName: claim, zonalVolume };
    }
    return { name, kind: 'other' };
  });
}

function nodeSelectorTerms(v: unknown): NodeSelectorTerm[] {
  return objs(v).map((t) => {
    const term: NodeSelectorTerm = {};
    const exprs = objs(t.matchExpressions).flatMap((e) => {
      const k = str(e.key);
      const op = str(e.operator);
      if (k === undefined || op === undefined) return [];
      const values = strings(e.values);
      return [values.length > 0 ? { key: k, operator: op, values } : { key: k, operator: op }];
    });
    if (exprs.length > 0) term.matchExpressions = exprs;
    const fields = objs(t.matchFields).flatMap((e) => {
      const k = str(e.key);
      const op = str(e.operator);
      return k === undefined || op === undefined
        ? []
        : [{ key: k, operator: op, values: strings(e.values) }];
    });
    if (fields.length > 0) term.matchFields = fields;
    return term;
  });
}

function affinityOf(spec: Obj): Affinity | undefined {
  const a = obj(spec.affinity);
  const out: Affinity = {};
  const na = obj(a.nodeAffinity);
  const required = obj(na.requiredDuringSchedulingIgnoredDuringExecution);
  const preferred: PreferredSchedulingTerm[] = objs(
    na.preferredDuringSchedulingIgnoredDuringExecution,
  ).map((p) => ({
    weight: int(p.weight) ?? 1,
    preference: nodeSelectorTerms([p.preference])[0] ?? {},
  }));
  const terms = nodeSelectorTerms(required.nodeSelectorTerms);
  if (terms.length > 0 || preferred.length > 0) {
    out.nodeAffinity = {};
    if (terms.length > 0)
      out.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution = {
        nodeSelectorTerms: terms,
      };
    if (preferred.length > 0)
      out.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution = preferred;
  }
  const paa = obj(a.podAntiAffinity);
  const requiredKeys = objs(paa.requiredDuringSchedulingIgnoredDuringExecution)
    .map((t) => str(t.topologyKey))
    .filter((k) => k !== undefined);
  const preferredKeys = objs(paa.preferredDuringSchedulingIgnoredDuringExecution)
    .map((t) => str(obj(t.podAffinityTerm).topologyKey))
    .filter((k) => k !== undefined);
  if (requiredKeys.length + preferredKeys.length > 0) {
    out.podAntiAffinity = {
      requiredTopologyKeys: requiredKeys,
      preferredTopologyKeys: preferredKeys,
    };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function tolerationsOf(spec: Obj): Toleration[] {
  return objs(spec.tolerations).map((t) => {
    const out: Toleration = {};
    for (const f of ['key', 'operator', 'value', 'effect'] as const) {
      const v = str(t[f]);
      if (v !== undefined) out[f] = v;
    }
    const secs = int(t.tolerationSeconds);
    if (secs !== undefined) out.tolerationSeconds = secs;
    return out;
  });
}

function spreadOf(spec: Obj): TopologySpreadFacts[] {
  return objs(spec.topologySpreadConstraints).flatMap((c) => {
    const topologyKey = str(c.topologyKey);
    if (topologyKey === undefined) return [];
    return [
      {
        topologyKey,
        maxSkew: int(c.maxSkew) ?? 1,
        whenUnsatisfiable: str(c.whenUnsatisfiable) ?? 'DoNotSchedule',
      },
    ];
  });
}

export function templateOf(w: K8s, template: Obj, index: Index): PodTemplateFacts {
  const spec = obj(template.spec);
  const tmeta = obj(template.metadata);
  const where = describe(w);
  const facts: PodTemplateFacts = {
    labels: strMap(tmeta.labels),
    annotations: strMap(tmeta.annotations),
    containers: containersOf(spec, where, index.warnings),
    volumes: volumesOf(spec, w.meta.namespace, index),
    volumeClaimTemplates:
      w.kind === 'StatefulSet'
        ? objs(obj(w.raw.spec).volumeClaimTemplates)
            .map((c) => str(obj(c.metadata).name))
            .filter((n) => n !== undefined)
        : [],
    nodeSelector: strMap(spec.nodeSelector),
    tolerations: tolerationsOf(spec),
    topologySpread: spreadOf(spec),
  };
  const grace = int(spec.terminationGracePeriodSeconds);
  if (grace !== undefined) facts.terminationGracePeriodSeconds = grace;
  const affinity = affinityOf(spec);
  if (affinity !== undefined) facts.affinity = affinity;
  const pc = str(spec.priorityClassName);
  if (pc !== undefined) facts.priorityClassName = pc;
  return facts;
}
