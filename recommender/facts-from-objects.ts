/**
 * Raw Kubernetes objects (from a `kubectl get -o yaml|json` dump, or from the operator's
 * caches) → WorkloadFacts. Pure: plain objects in, facts and warnings out; nothing is read
 * from the world. Objects it cannot use give a warning, never an exception.
 *
 * Pods are tied to their workload through ownerReferences: Pod → ReplicaSet → Deployment (or
 * Argo Rollout), Pod → Job → CronJob, Pod → StatefulSet / DaemonSet. When the ReplicaSet or Job
 * is missing from the dump, the pod-template-hash label (or a CronJob's `-<n>` job suffix) still
 * ties the pod to its workload. System namespaces and workloads annotated kopek.dev/ignore:
 * "true" get no facts.
 */
import type { SavingsPolicy, WorkloadKind } from './api/v1alpha1.ts';
import {
  ANNOTATION_IGNORE,
  ANNOTATION_TOPOLOGY_MODE,
  LABEL_ARCH,
  LABEL_EKS_CAPACITY,
  LABEL_INSTANCE_TYPE,
  LABEL_KARPENTER_CAPACITY,
  LABEL_REGION,
  LABEL_ZONE,
  type Affinity,
  type CapacityLabelScheme,
  type CapacityType,
  type ClusterFacts,
  type ContainerFacts,
  type HpaFacts,
  type ImagePlatformsFact,
  type JobFacts,
  type NodeFacts,
  type NodeSelectorTerm,
  type PdbFacts,
  type PodFacts,
  type PodTemplateFacts,
  type PreferredSchedulingTerm,
  type ServiceFacts,
  type Taint,
  type Toleration,
  type TopologySpreadFacts,
  type VolumeFacts,
  type WorkloadFacts,
} from './facts.ts';
import { imagePlatformTable, lookupImagePlatforms } from './images.ts';
import { matchesSelector, selectPolicy } from './policy.ts';
import { parseQuantity } from './quantity.ts';

/** Namespaces that never get a recommendation. */
export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set([
  'kube-system',
  'kube-public',
  'kube-node-lease',
]);

/** Kinds the builder reads; every other kind is reported once and ignored. */
export const KNOWN_KINDS: ReadonlySet<string> = new Set([
  'Node',
  'Namespace',
  'Pod',
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Rollout',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
  'Service',
  'EndpointSlice',
  'PersistentVolumeClaim',
  'PersistentVolume',
  'SavingsPolicy',
]);

const WORKLOAD_KINDS: ReadonlySet<string> = new Set([
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Rollout',
]);

export interface BuildOptions {
  /** Region for prices; overrides the nodes' topology.kubernetes.io/region. */
  region?: string;
  /** Image reference (any spelling) → platforms or the registry's error. */
  imagePlatforms?: Readonly<Record<string, ImagePlatformsFact>>;
  /** SavingsPolicies besides those among the objects. */
  policies?: readonly SavingsPolicy[];
  /** Kubernetes minor version of the API server; otherwise the newest kubelet's. */
  kubernetesMinor?: number;
}

/** A workload that was found but gets no recommendation, and why. */
export interface SkippedWorkload {
  namespace: string;
  kind: string;
  name: string;
  reason: string;
}

export interface BuildResult {
  /** Sorted by namespace, kind, name. */
  facts: WorkloadFacts[];
  skipped: SkippedWorkload[];
  /** One line per problem, naming the object. */
  warnings: string[];
}

// ---- reading untyped objects ---------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function obj(v: unknown): Obj {
  return isObj(v) ? v : {};
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function objs(v: unknown): Obj[] {
  return arr(v).filter(isObj);
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === 'string') out[k] = x;
  return out;
}
function strings(v: unknown): string[] {
  return arr(v).filter((x): x is string => typeof x === 'string');
}

interface Meta {
  name: string;
  namespace: string;
  uid?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  owners: { kind: string; name: string; uid?: string; controller: boolean }[];
  creationTimestamp?: string;
}

interface K8s {
  kind: string;
  apiVersion: string;
  meta: Meta;
  raw: Obj;
}

function metaOf(raw: Obj): Meta | undefined {
  const m = obj(raw.metadata);
  const name = str(m.name);
  if (name === undefined || name === '') return undefined;
  const meta: Meta = {
    name,
    namespace: str(m.namespace) ?? '',
    labels: strMap(m.labels),
    annotations: strMap(m.annotations),
    owners: objs(m.ownerReferences).flatMap((o) => {
      const kind = str(o.kind);
      const oname = str(o.name);
      if (kind === undefined || oname === undefined) return [];
      const ref: Meta['owners'][number] = {
        kind,
        name: oname,
        controller: o.controller === true,
      };
      const uid = str(o.uid);
      if (uid !== undefined) ref.uid = uid;
      return [ref];
    }),
  };
  const uid = str(m.uid);
  if (uid !== undefined) meta.uid = uid;
  return meta;
}

function describe(o: K8s): string {
  return o.meta.namespace === ''
    ? `${o.kind} ${o.meta.name}`
    : `${o.kind} ${o.meta.namespace}/${o.meta.name}`;
}

/** The controlling owner (or the only one). */
function ownerOf(meta: Meta): Meta['owners'][number] | undefined {
  return (
    meta.owners.find((o) => o.controller) ?? (meta.owners.length === 1 ? meta.owners[0] : undefined)
  );
}

// ---- the index -----------------------------------------------------------------------------

interface NodeInfo {
  /** Shared by every pod on the node. */
  facts: NodeFacts;
  taints: Taint[];
  kubeletMinor?: number;
}

interface Index {
  nodes: Map<string, NodeInfo>;
  namespaceLabels: Map<string, Record<string, string>>;
  byKind: Map<string, K8s[]>;
  byKey: Map<string, K8s>;
  /** `kind/namespace` → objects, for the per-workload lookups. */
  byNamespace: Map<string, K8s[]>;
  /** `namespace/service` → its EndpointSlices. */
  slicesByService: Map<string, K8s[]>;
  policies: SavingsPolicy[];
  warnings: string[];
}

function key(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** Kinds some dumps wrap in a List (v1 List, or e.g. PodList). */
function flatten(objects: readonly unknown[], warnings: string[]): Obj[] {
  const out: Obj[] = [];
  const visit = (o: unknown, where: string) => {
    if (!isObj(o)) {
      if (o !== null && o !== undefined)
        warnings.push(`${where}: not a Kubernetes object; skipped`);
      return;
    }
    const kind = str(o.kind);
    if (kind !== undefined && kind.endsWith('List') && Array.isArray(o.items)) {
      arr(o.items).forEach((item, i) => {
        visit(item, `${where} item ${i}`);
      });
      return;
    }
    out.push(o);
  };
  objects.forEach((o, i) => {
    visit(o, `object ${i}`);
  });
  return out;
}

function parseTaints(v: unknown): Taint[] {
  return objs(v).flatMap((t) => {
    const k = str(t.key);
    const effect = str(t.effect);
    if (k === undefined || effect === undefined) return [];
    const taint: Taint = { key: k, effect };
    const value = str(t.value);
    if (value !== undefined && value !== '') taint.value = value;
    return [taint];
  });
}

function capacityOf(labels: Record<string, string>): CapacityType | undefined {
  const k = labels[LABEL_KARPENTER_CAPACITY] ?? labels[LABEL_EKS_CAPACITY];
  if (k === undefined) return undefined;
  return k.toLowerCase() === 'spot' ? 'spot' : 'on-demand';
}

function minorOf(version: string | undefined): number | undefined {
  const m = /^v?1\.(\d+)/.exec(version ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function nodeInfo(o: K8s, warnings: string[]): NodeInfo {
  const l = o.meta.labels;
  const status = obj(o.raw.status);
  const capacity = obj(status.capacity);
  const node: NodeFacts = { name: o.meta.name };
  const info: NodeInfo = { facts: node, taints: parseTaints(obj(o.raw.spec).taints) };
  const zone = l[LABEL_ZONE] ?? l['failure-domain.beta.kubernetes.io/zone'];
  const region = l[LABEL_REGION] ?? l['failure-domain.beta.kubernetes.io/region'];
  const type = l[LABEL_INSTANCE_TYPE] ?? l['beta.kubernetes.io/instance-type'];
  const arch = l[LABEL_ARCH] ?? l['beta.kubernetes.io/arch'];
  const capacityType = capacityOf(l);
  if (zone !== undefined) node.zone = zone;
  if (region !== undefined) node.region = region;
  if (type !== undefined) node.instanceType = type;
  if (arch !== undefined) node.arch = arch;
  if (capacityType !== undefined) node.capacityType = capacityType;
  for (const [field, target] of [
    ['cpu', 'cpuCores'],
    ['memory', 'memoryBytes'],
  ] as const) {
    const raw = capacity[field];
    if (raw === undefined) continue;
    const q = parseQuantity(raw);
    if (q === undefined)
      warnings.push(
        `${describe(o)}: status.capacity.${field} ${JSON.stringify(raw)} is not a quantity; ignored`,
      );
    else node[target] = q;
  }
  const minor = minorOf(str(obj(status.nodeInfo).kubeletVersion));
  if (minor !== undefined) info.kubeletMinor = minor;
  return info;
}

function indexObjects(objects: readonly unknown[], options: BuildOptions): Index {
  const warnings: string[] = [];
  const index: Index = {
    nodes: new Map(),
    namespaceLabels: new Map(),
    byKind: new Map(),
    byKey: new Map(),
    byNamespace: new Map(),
    slicesByService: new Map(),
    policies: [...(options.policies ?? [])],
    warnings,
  };
  const ignored = new Map<string, number>();
  for (const raw of flatten(objects, warnings)) {
    const kind = str(raw.kind);
    const apiVersion = str(raw.apiVersion);
    if (kind === undefined || apiVersion === undefined) {
      warnings.push(
        `an object without ${kind === undefined ? 'kind' : 'apiVersion'} is not a Kubernetes object; skipped`,
      );
      continue;
    }
    if (!KNOWN_KINDS.has(kind)) {
      ignored.set(kind, (ignored.get(kind) ?? 0) + 1);
      continue;
    }
    const meta = metaOf(raw);
    if (meta === undefined) {
      warnings.push(`a ${kind} without metadata.name; skipped`);
      continue;
    }
    const o: K8s = { kind, apiVersion, meta, raw };
    const k = key(kind, meta.namespace, meta.name);
    if (index.byKey.has(k)) {
      warnings.push(`${describe(o)} appears twice; the last one is used`);
      const list = index.byKind.get(kind) ?? [];
      index.byKind.set(
        kind,
        list.filter((x) => key(x.kind, x.meta.namespace, x.meta.name) !== k),
      );
    }
    index.byKey.set(k, o);
    index.byKind.set(kind, [...(index.byKind.get(kind) ?? []), o]);
    if (kind === 'Node') index.nodes.set(meta.name, nodeInfo(o, warnings));
    if (kind === 'Namespace') index.namespaceLabels.set(meta.name, meta.labels);
    if (kind === 'SavingsPolicy') index.policies.push(raw as unknown as SavingsPolicy);
  }
  for (const list of index.byKind.values()) {
    for (const o of list) {
      const k = `${o.kind}/${o.meta.namespace}`;
      const inNs = index.byNamespace.get(k);
      if (inNs === undefined) index.byNamespace.set(k, [o]);
      else inNs.push(o);
      const service =
        o.kind === 'EndpointSlice' ? o.meta.labels['kubernetes.io/service-name'] : undefined;
      if (service === undefined) continue;
      const sk = `${o.meta.namespace}/${service}`;
      const slices = index.slicesByService.get(sk);
      if (slices === undefined) index.slicesByService.set(sk, [o]);
      else slices.push(o);
    }
  }
  for (const [kind, n] of [...ignored].sort(([a], [b]) => a.localeCompare(b))) {
    warnings.push(
      `ignored ${n} ${kind} object${n === 1 ? '' : 's'}: kopek does not read that kind`,
    );
  }
  return index;
}

function kindList(index: Index, kind: string): K8s[] {
  return index.byKind.get(kind) ?? [];
}

function kindIn(index: Index, kind: string, namespace: string): K8s[] {
  return index.byNamespace.get(`${kind}/${namespace}`) ?? [];
}

// ---- cluster facts -------------------------------------------------------------------------

function mostCommon(values: readonly (string | undefined)[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort(([a, x], [b, y]) => y - x || a.localeCompare(b))[0]?.[0];
}

/** Taints that are about node lifecycle, not about which workloads a pool takes. */
function isLifecycleTaint(t: Taint): boolean {
  return (
    t.key.startsWith('node.kubernetes.io/') ||
    t.key.startsWith('node.cloudprovider.kubernetes.io/') ||
    t.key.startsWith('karpenter.sh/') ||
    t.key === 'ToBeDeletedByClusterAutoscaler' ||
    t.effect === 'PreferNoSchedule'
  );
}

/** Taints every node of a set carries (the pool's own taint), lifecycle taints left out. */
function commonTaints(nodes: readonly NodeInfo[]): Taint[] {
  const first = nodes[0];
  if (first === undefined) return [];
  const same = (a: Taint, b: Taint) =>
    a.key === b.key && a.value === b.value && a.effect === b.effect;
  return first.taints
    .filter((t) => !isLifecycleTaint(t) && nodes.every((n) => n.taints.some((x) => same(x, t))))
    .sort((a, b) => a.key.localeCompare(b.key) || a.effect.localeCompare(b.effect));
}

function clusterFacts(index: Index, options: BuildOptions): ClusterFacts {
  const nodes = [...index.nodes.values()].sort((a, b) => a.facts.name.localeCompare(b.facts.name));
  const schemes = new Set<CapacityLabelScheme>();
  for (const o of kindList(index, 'Node')) {
    if (o.meta.labels[LABEL_KARPENTER_CAPACITY] !== undefined) schemes.add('karpenter');
    if (o.meta.labels[LABEL_EKS_CAPACITY] !== undefined) schemes.add('eks');
  }
  const cluster: ClusterFacts = {
    zones: [...new Set(nodes.map((n) => n.facts.zone).filter((z) => z !== undefined))].sort(),
    architectures: [
      ...new Set(nodes.map((n) => n.facts.arch).filter((a) => a !== undefined)),
    ].sort(),
    capacityTypes: [...new Set(nodes.map((n) => n.facts.capacityType ?? 'on-demand'))].sort(),
    capacityLabelSchemes: [...schemes].sort(),
    spotNodeTaints: commonTaints(nodes.filter((n) => n.facts.capacityType === 'spot')),
    arm64NodeTaints: commonTaints(nodes.filter((n) => n.facts.arch === 'arm64')),
  };
  const region = options.region ?? mostCommon(nodes.map((n) => n.facts.region));
  if (region !== undefined) cluster.region = region;
  const minors = nodes.map((n) => n.kubeletMinor).filter((m) => m !== undefined);
  // The API server is never older than its kubelets: the newest kubelet is a safe lower bound.
  const minor = options.kubernetesMinor ?? (minors.length > 0 ? Math.max(...minors) : undefined);
  if (minor !== undefined) cluster.kubernetesMinor = minor;
  return cluster;
}

// ---- pod templates -------------------------------------------------------------------------

function resourceOf(
  c: Obj,
  resource: 'cpu' | 'memory',
  where: string,
  warnings: string[],
): number | undefined {
  const resources = obj(c.resources);
  // Kubernetes defaults a missing request to the limit.
  const raw = obj(resources.requests)[resource] ?? obj(resources.limits)[resource];
  if (raw === undefined) return undefined;
  const q = parseQuantity(raw);
  if (q === undefined || q < 0) {
    warnings.push(
      `${where}: ${resource} request ${JSON.stringify(raw)} is not a quantity; counted as 0`,
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
    const cw = `${where} container ${name}`;
    const fact: ContainerFacts = { name, image, role, readinessProbe: isObj(c.readinessProbe) };
    const cpu = resourceOf(c, 'cpu', cw, warnings);
    const mem = resourceOf(c, 'memory', cw, warnings);
    const sleep = preStopSleep(c);
    if (cpu !== undefined) fact.cpuRequestCores = cpu;
    if (mem !== undefined) fact.memoryRequestBytes = mem;
    if (sleep !== undefined) fact.preStopSleepSeconds = sleep;
    out.push(fact);
  };
  for (const c of objs(spec.initContainers))
    add(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init');
  for (const c of objs(spec.containers)) add(c, 'main');
  return out;
}

function volumesOf(spec: Obj, namespace: string, index: Index): VolumeFacts[] {
  return objs(spec.volumes).map((v) => {
    const name = str(v.name) ?? '(unnamed)';
    if (isObj(v.hostPath)) return { name, kind: 'hostPath' };
    if (isObj(v.emptyDir)) return { name, kind: 'emptyDir' };
    const claim = str(obj(v.persistentVolumeClaim).claimName);
    if (claim !== undefined) {
      const pvc = index.byKey.get(key('PersistentVolumeClaim', namespace, claim));
      const pvName = str(obj(pvc?.raw.spec).volumeName);
      const pv =
        pvName === undefined ? undefined : index.byKey.get(key('PersistentVolume', '', pvName));
      const local = pv !== undefined && isObj(obj(pv.raw.spec).local);
      return { name, kind: local ? 'local' : 'persistentVolumeClaim', claimName: claim };
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

function templateOf(w: K8s, template: Obj, index: Index): PodTemplateFacts {
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

/** A pod's effective requests: max(Σ main + sidecars, each init + sidecars started before it) + overhead. */
function podRequests(spec: Obj, where: string, warnings: string[]): { cpu: number; mem: number } {
  const sum = { cpu: 0, mem: 0 };
  const sidecars = { cpu: 0, mem: 0 };
  const initPeak = { cpu: 0, mem: 0 };
  for (const c of objs(spec.initContainers)) {
    const cw = `${where} init container ${str(c.name) ?? ''}`;
    const cpu = resourceOf(c, 'cpu', cw, warnings) ?? 0;
    const mem = resourceOf(c, 'memory', cw, warnings) ?? 0;
    if (c.restartPolicy === 'Always') {
      sidecars.cpu += cpu;
      sidecars.mem += mem;
    } else {
      initPeak.cpu = Math.max(initPeak.cpu, sidecars.cpu + cpu);
      initPeak.mem = Math.max(initPeak.mem, sidecars.mem + mem);
    }
  }
  for (const c of objs(spec.containers)) {
    const cw = `${where} container ${str(c.name) ?? ''}`;
    sum.cpu += resourceOf(c, 'cpu', cw, warnings) ?? 0;
    sum.mem += resourceOf(c, 'memory', cw, warnings) ?? 0;
  }
  const overhead = obj(spec.overhead);
  return {
    cpu: Math.max(sum.cpu + sidecars.cpu, initPeak.cpu) + (parseQuantity(overhead.cpu) ?? 0),
    mem: Math.max(sum.mem + sidecars.mem, initPeak.mem) + (parseQuantity(overhead.memory) ?? 0),
  };
}

// ---- owners --------------------------------------------------------------------------------

/** The workload (kind/namespace/name key) a pod belongs to, or undefined for bare pods. */
function workloadOfPod(pod: K8s, index: Index): string | undefined {
  const owner = ownerOf(pod.meta);
  if (owner === undefined) return undefined;
  const ns = pod.meta.namespace;
  if (owner.kind === 'ReplicaSet') {
    const rs = index.byKey.get(key('ReplicaSet', ns, owner.name));
    if (rs !== undefined) {
      const top = ownerOf(rs.meta);
      if (top !== undefined && (top.kind === 'Deployment' || top.kind === 'Rollout'))
        return key(top.kind, ns, top.name);
      return key('ReplicaSet', ns, owner.name);
    }
    // No ReplicaSet in the dump: its name is the Deployment's plus "-<pod-template-hash>".
    const hash =
      pod.meta.labels['pod-template-hash'] ?? pod.meta.labels['rollouts-pod-template-hash'];
    if (hash !== undefined && owner.name.endsWith(`-${hash}`)) {
      const base = owner.name.slice(0, -hash.length - 1);
      for (const kind of ['Deployment', 'Rollout'])
        if (index.byKey.has(key(kind, ns, base))) return key(kind, ns, base);
    }
    return key('ReplicaSet', ns, owner.name);
  }
  if (owner.kind === 'Job') {
    const job = index.byKey.get(key('Job', ns, owner.name));
    const top = job === undefined ? undefined : ownerOf(job.meta);
    if (top?.kind === 'CronJob') return key('CronJob', ns, top.name);
    if (job === undefined) {
      // No Job in the dump: a CronJob names its Jobs "<cronjob>-<scheduled time>".
      const m = /^(.*)-\d+$/.exec(owner.name);
      if (m?.[1] !== undefined && index.byKey.has(key('CronJob', ns, m[1])))
        return key('CronJob', ns, m[1]);
    }
    return key('Job', ns, owner.name);
  }
  return key(owner.kind, ns, owner.name);
}

/** True for ReplicaSets and Jobs that a higher workload (Deployment, Rollout, CronJob) owns. */
function isOwnedIntermediate(o: K8s): boolean {
  const owner = ownerOf(o.meta);
  if (owner === undefined) return false;
  if (o.kind === 'ReplicaSet') return owner.kind === 'Deployment' || owner.kind === 'Rollout';
  if (o.kind === 'Job') return owner.kind === 'CronJob';
  return false;
}

// ---- workloads -----------------------------------------------------------------------------

interface RunningPod {
  pod: K8s;
  node?: NodeInfo;
  ready: boolean;
  workload?: string;
}

function runningPods(index: Index): RunningPod[] {
  const out: RunningPod[] = [];
  for (const pod of kindList(index, 'Pod')) {
    const status = obj(pod.raw.status);
    const phase = str(status.phase);
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    const nodeName = str(obj(pod.raw.spec).nodeName);
    if (nodeName === undefined) continue;
    const node = index.nodes.get(nodeName);
    const ready = objs(status.conditions).some((c) => c.type === 'Ready' && c.status === 'True');
    const entry: RunningPod = { pod, ready };
    if (node !== undefined) entry.node = node;
    else
      index.warnings.push(
        `${describe(pod)} runs on node ${nodeName}, which is not in the input; it is not priced`,
      );
    const wl = workloadOfPod(pod, index);
    if (wl !== undefined) entry.workload = wl;
    out.push(entry);
  }
  return out;
}

function templateSource(w: K8s): { template: Obj; jobSpec?: Obj } | undefined {
  const spec = obj(w.raw.spec);
  if (w.kind === 'CronJob') {
    const jobSpec = obj(obj(spec.jobTemplate).spec);
    return isObj(jobSpec.template) ? { template: jobSpec.template, jobSpec } : undefined;
  }
  if (!isObj(spec.template)) return undefined;
  return w.kind === 'Job'
    ? { template: spec.template, jobSpec: spec }
    : { template: spec.template };
}

function percentOrInt(v: unknown, total: number): number | undefined {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(str(v) ?? '');
  return m?.[1] === undefined ? undefined : Math.ceil((total * Number(m[1])) / 100);
}

function pdbFor(
  w: K8s,
  labels: Record<string, string>,
  replicas: number,
  index: Index,
): PdbFacts | undefined {
  let best: PdbFacts | undefined;
  for (const p of kindIn(index, 'PodDisruptionBudget', w.meta.namespace)) {
    const spec = obj(p.raw.spec);
    const selector = obj(spec.selector);
    if (Object.keys(selector).length === 0) continue;
    if (!matchesSelector(selector, labels)) continue;
    let allowed: number;
    const maxUnavailable = percentOrInt(spec.maxUnavailable, replicas);
    const minAvailable = percentOrInt(spec.minAvailable, replicas);
    if (maxUnavailable !== undefined) allowed = Math.min(maxUnavailable, replicas);
    else if (minAvailable !== undefined) allowed = Math.max(0, replicas - minAvailable);
    else allowed = int(obj(p.raw.status).disruptionsAllowed) ?? 0;
    if (best === undefined || allowed < best.disruptionsAllowed)
      best = { name: p.meta.name, disruptionsAllowed: allowed };
  }
  return best;
}

function hpaFor(w: K8s, index: Index): HpaFacts | undefined {
  for (const h of kindIn(index, 'HorizontalPodAutoscaler', w.meta.namespace)) {
    const spec = obj(h.raw.spec);
    const target = obj(spec.scaleTargetRef);
    if (target.kind !== w.kind || target.name !== w.meta.name) continue;
    return {
      name: h.meta.name,
      minReplicas: int(spec.minReplicas) ?? 1,
      maxReplicas: int(spec.maxReplicas) ?? 1,
    };
  }
  return undefined;
}

function jobFacts(w: K8s, jobSpec: Obj, index: Index): JobFacts {
  const out: JobFacts = {};
  const backoff = int(jobSpec.backoffLimit);
  const deadline = int(jobSpec.activeDeadlineSeconds);
  if (backoff !== undefined) out.backoffLimit = backoff;
  if (deadline !== undefined) out.activeDeadlineSeconds = deadline;
  const ignores = objs(obj(jobSpec.podFailurePolicy).rules).some(
    (r) =>
      r.action === 'Ignore' && objs(r.onPodConditions).some((c) => c.type === 'DisruptionTarget'),
  );
  if (ignores) out.ignoresDisruptions = true;
  // The run time of the Job itself, or of the CronJob's latest finished Job.
  const jobs =
    w.kind === 'Job'
      ? [w]
      : kindIn(index, 'Job', w.meta.namespace).filter((j) => ownerOf(j.meta)?.name === w.meta.name);
  let latest: { start: number; seconds: number } | undefined;
  for (const j of jobs) {
    const status = obj(j.raw.status);
    const start = Date.parse(str(status.startTime) ?? '');
    const end = Date.parse(str(status.completionTime) ?? '');
    if (Number.isNaN(start) || Number.isNaN(end) || end < start) continue;
    if (latest === undefined || start > latest.start)
      latest = { start, seconds: (end - start) / 1000 };
  }
  if (latest !== undefined) out.observedRunSeconds = latest.seconds;
  return out;
}

function replicasOf(w: K8s, jobSpec: Obj | undefined, pods: number): number {
  const spec = obj(w.raw.spec);
  if (w.kind === 'DaemonSet') return int(obj(w.raw.status).desiredNumberScheduled) ?? pods;
  if (jobSpec !== undefined) return int(jobSpec.parallelism) ?? 1;
  return int(spec.replicas) ?? 1;
}

function selectorOf(w: K8s, templateLabels: Record<string, string>): Record<string, string> {
  if (w.kind === 'Job' || w.kind === 'CronJob') {
    // Jobs select on generated labels; the template's own labels are what a person recognises.
    return Object.fromEntries(
      Object.entries(templateLabels).filter(
        ([k]) =>
          !k.startsWith('batch.kubernetes.io/') && k !== 'controller-uid' && k !== 'job-name',
      ),
    );
  }
  const matchLabels = strMap(obj(obj(w.raw.spec).selector).matchLabels);
  return Object.keys(matchLabels).length > 0 ? matchLabels : templateLabels;
}

function podFacts(p: RunningPod, warnings: string[]): PodFacts {
  const req = podRequests(obj(p.pod.raw.spec), describe(p.pod), warnings);
  const out: PodFacts = {
    name: p.pod.meta.name,
    ready: p.ready,
    cpuRequestCores: req.cpu,
    memoryRequestBytes: req.mem,
  };
  if (p.node !== undefined) {
    out.node = p.node.facts;
  }
  return out;
}

interface ZoneCounts {
  total: Map<string, number>;
  byWorkload: Map<string, Map<string, number>>;
}

/** Where client pods run: every non-system, non-DaemonSet running pod, per zone. */
function clientZones(pods: readonly RunningPod[]): ZoneCounts {
  const total = new Map<string, number>();
  const byWorkload = new Map<string, Map<string, number>>();
  for (const p of pods) {
    const zone = p.node?.facts.zone;
    if (zone === undefined || SYSTEM_NAMESPACES.has(p.pod.meta.namespace)) continue;
    if (p.workload?.startsWith('DaemonSet/') === true) continue;
    total.set(zone, (total.get(zone) ?? 0) + 1);
    if (p.workload !== undefined) {
      const m = byWorkload.get(p.workload) ?? new Map<string, number>();
      m.set(zone, (m.get(zone) ?? 0) + 1);
      byWorkload.set(p.workload, m);
    }
  }
  return { total, byWorkload };
}

function servicesFor(
  w: K8s,
  templateLabels: Record<string, string>,
  pods: readonly RunningPod[],
  clients: ZoneCounts,
  index: Index,
): ServiceFacts[] {
  const wkey = key(w.kind, w.meta.namespace, w.meta.name);
  const own = clients.byWorkload.get(wkey) ?? new Map<string, number>();
  const clientWeights: Record<string, number> = {};
  for (const [z, n] of [...clients.total].sort(([a], [b]) => a.localeCompare(b))) {
    const weight = n - (own.get(z) ?? 0);
    if (weight > 0) clientWeights[z] = weight;
  }
  const out: ServiceFacts[] = [];
  for (const s of kindIn(index, 'Service', w.meta.namespace)) {
    const spec = obj(s.raw.spec);
    if (spec.type === 'ExternalName') continue;
    const selector = strMap(spec.selector);
    if (
      Object.keys(selector).length === 0 ||
      !matchesSelector({ matchLabels: selector }, templateLabels)
    )
      continue;
    const perZone: Record<string, number> = {};
    const slices = index.slicesByService.get(`${s.meta.namespace}/${s.meta.name}`) ?? [];
    if (slices.length > 0) {
      for (const slice of slices) {
        for (const ep of objs(slice.raw.endpoints)) {
          const zone = str(ep.zone);
          const ready = obj(ep.conditions).ready !== false;
          if (zone !== undefined && ready) perZone[zone] = (perZone[zone] ?? 0) + 1;
        }
      }
    } else {
      for (const p of pods) {
        const zone = p.node?.facts.zone;
        if (zone !== undefined && p.ready) perZone[zone] = (perZone[zone] ?? 0) + 1;
      }
    }
    const fact: ServiceFacts = {
      name: s.meta.name,
      headless: spec.clusterIP === 'None',
      readyEndpointsPerZone: perZone,
      clientWeightsByZone: clientWeights,
    };
    const td = str(spec.trafficDistribution);
    const mode =
      s.meta.annotations[ANNOTATION_TOPOLOGY_MODE] ??
      s.meta.annotations['service.kubernetes.io/topology-aware-hints'];
    if (td !== undefined) fact.trafficDistribution = td;
    if (mode !== undefined) fact.topologyMode = mode;
    out.push(fact);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function imagesFor(
  template: PodTemplateFacts,
  table: ReadonlyMap<string, ImagePlatformsFact>,
): Record<string, ImagePlatformsFact> {
  const out: Record<string, ImagePlatformsFact> = {};
  for (const c of template.containers) {
    const fact = lookupImagePlatforms(table, c.image);
    if (fact !== undefined) out[c.image] = fact;
  }
  return out;
}

interface Context {
  index: Index;
  cluster: ClusterFacts;
  pods: RunningPod[];
  podsByWorkload: Map<string, RunningPod[]>;
  clients: ZoneCounts;
  images: ReadonlyMap<string, ImagePlatformsFact>;
}

function buildOne(w: K8s, ctx: Context): WorkloadFacts | string {
  const source = templateSource(w);
  if (source === undefined) {
    return w.kind === 'Rollout' && isObj(obj(w.raw.spec).workloadRef)
      ? 'its pod template is in spec.workloadRef, which kopek does not follow yet'
      : 'it has no pod template (spec.template)';
  }
  const { index } = ctx;
  const template = templateOf(w, source.template, index);
  const wkey = key(w.kind, w.meta.namespace, w.meta.name);
  const pods = ctx.podsByWorkload.get(wkey) ?? [];
  const replicas = replicasOf(w, source.jobSpec, pods.length);
  const hpa = hpaFor(w, index);
  const effective = hpa?.minReplicas ?? replicas;
  const nsLabels = {
    ...(index.namespaceLabels.get(w.meta.namespace) ?? {}),
    'kubernetes.io/metadata.name': w.meta.namespace,
  };
  const facts: WorkloadFacts = {
    kind: w.kind as WorkloadKind,
    name: w.meta.name,
    namespace: w.meta.namespace,
    labels: w.meta.labels,
    annotations: w.meta.annotations,
    selector: selectorOf(w, template.labels),
    replicas,
    template,
    pods: pods.map((p) => podFacts(p, index.warnings)).sort((a, b) => a.name.localeCompare(b.name)),
    imagePlatforms: imagesFor(template, ctx.images),
    services: servicesFor(w, template.labels, pods, ctx.clients, index),
    cluster: ctx.cluster,
    policy: selectPolicy(index.policies, nsLabels, w.meta.labels),
  };
  if (w.meta.uid !== undefined) facts.uid = w.meta.uid;
  if (hpa !== undefined) facts.hpa = hpa;
  const pdb = pdbFor(w, template.labels, effective, index);
  if (pdb !== undefined) facts.pdb = pdb;
  if (source.jobSpec !== undefined) facts.job = jobFacts(w, source.jobSpec, index);
  return facts;
}

/**
 * Builds the facts of every workload among `objects` (any mix of kinds, Lists flattened).
 * Deterministic: the same objects and options give the same facts in the same order.
 */
export function factsFromObjects(
  objects: readonly unknown[],
  options: BuildOptions = {},
): BuildResult {
  const index = indexObjects(objects, options);
  const cluster = clusterFacts(index, options);
  const pods = runningPods(index);
  const podsByWorkload = new Map<string, RunningPod[]>();
  for (const p of pods) {
    if (p.workload === undefined) continue;
    const list = podsByWorkload.get(p.workload);
    if (list === undefined) podsByWorkload.set(p.workload, [p]);
    else list.push(p);
  }
  const ctx: Context = {
    index,
    cluster,
    pods,
    podsByWorkload,
    clients: clientZones(pods),
    images: imagePlatformTable(options.imagePlatforms ?? {}),
  };
  const facts: WorkloadFacts[] = [];
  const skipped: SkippedWorkload[] = [];
  const workloads = [...index.byKind.entries()]
    .filter(([kind]) => WORKLOAD_KINDS.has(kind))
    .flatMap(([, list]) => list)
    .filter((w) => !isOwnedIntermediate(w))
    .sort(
      (a, b) =>
        a.meta.namespace.localeCompare(b.meta.namespace) ||
        a.kind.localeCompare(b.kind) ||
        a.meta.name.localeCompare(b.meta.name),
    );
  for (const w of workloads) {
    const skip = (reason: string) =>
      skipped.push({ namespace: w.meta.namespace, kind: w.kind, name: w.meta.name, reason });
    if (w.meta.namespace === '') {
      index.warnings.push(`${describe(w)} has no metadata.namespace; skipped`);
      continue;
    }
    if (SYSTEM_NAMESPACES.has(w.meta.namespace)) {
      skip('system namespace');
      continue;
    }
    if (w.meta.annotations[ANNOTATION_IGNORE] === 'true') {
      skip(`annotated ${ANNOTATION_IGNORE}: "true"`);
      continue;
    }
    const built = buildOne(w, ctx);
    if (typeof built === 'string') {
      index.warnings.push(`${describe(w)}: ${built}; skipped`);
      continue;
    }
    facts.push(built);
  }
  const orphans = pods.filter(
    (p) => p.workload === undefined && !SYSTEM_NAMESPACES.has(p.pod.meta.namespace),
  );
  if (orphans.length > 0) {
    index.warnings.push(
      `${orphans.length} pod${orphans.length === 1 ? ' has' : 's have'} no owning workload (bare pods get no recommendation): ${orphans
        .slice(0, 5)
        .map((p) => describe(p.pod))
        .join(', ')}${orphans.length > 5 ? ', …' : ''}`,
    );
  }
  return { facts, skipped, warnings: index.warnings };
}
