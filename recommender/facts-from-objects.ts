/**
 * Raw Kubernetes objects (from a `kubectl get -o yaml|json` dump, or from the operator's
 * caches) → WorkloadFacts. Pure: plain objects in, facts and warnings out; nothing is read
 * from the world. Objects it cannot use give a warning, never an exception.
 *
 * This file puts the steps together; each source is read in its own file under objects/:
 * index.ts (Lists flattened, objects indexed), nodes.ts (nodes and the cluster), owners.ts
 * (pod → workload through owner chains), pods.ts (running pods and their requests),
 * templates.ts (pod templates), controllers.ts (replicas, HPA, PDB, Jobs), services.ts
 * (Services, EndpointSlices, client zones), policies.ts (SavingsPolicies, validated), all
 * through the typed readers of read.ts.
 * System namespaces and workloads annotated kopek.dev/ignore: "true" get no facts.
 */
import type { SavingsPolicy, WorkloadKind } from './api/v1alpha1.ts';
import {
  ANNOTATION_IGNORE,
  type ClusterFacts,
  type HpaFacts,
  type ImagePlatformsFact,
  type PodTemplateFacts,
  type WorkloadFacts,
} from './facts.ts';
import { imagePlatformTable, lookupImagePlatforms } from './images.ts';
import {
  hpasByTarget,
  jobFacts,
  jobsByOwner,
  pdbFor,
  readBudgets,
  replicasOf,
  selectorOf,
  type Budget,
} from './objects/controllers.ts';
import {
  indexObjects,
  kindList,
  SYSTEM_NAMESPACES,
  WORKLOAD_KINDS,
  type Index,
} from './objects/index.ts';
import { clusterFacts } from './objects/nodes.ts';
import { isOwnedIntermediate, workloadOwner } from './objects/owners.ts';
import { podFacts, runningPods, type RunningPod } from './objects/pods.ts';
import { readPolicies } from './objects/policies.ts';
import { describe, isRecord, obj, objectKey, type K8s } from './objects/read.ts';
import {
  clientZones,
  readServices,
  servicesFor,
  type SelectingService,
  type ZoneCounts,
} from './objects/services.ts';
import type { SelectorIndex } from './objects/selectors.ts';
import { templateOf, templateSource } from './objects/templates.ts';
import { selectPolicy } from './policy.ts';

export { KNOWN_KINDS, SYSTEM_NAMESPACES } from './objects/index.ts';

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

/** What building a workload's facts reads besides the workload (facts-incremental.ts keeps one up to date). */
export interface Context {
  index: Index;
  cluster: ClusterFacts;
  podsByWorkload: ReadonlyMap<string, readonly RunningPod[]>;
  clients: ZoneCounts;
  images: ReadonlyMap<string, ImagePlatformsFact>;
  // Lookups built once, so that each workload costs the same however large its namespace.
  budgets: SelectorIndex<Budget>;
  services: SelectorIndex<SelectingService>;
  hpas: ReadonlyMap<string, HpaFacts>;
  jobs: ReadonlyMap<string, K8s[]>;
  /** The well-formed SavingsPolicies, from the options and the objects. */
  policies: readonly SavingsPolicy[];
}

function buildOne(w: K8s, ctx: Context): WorkloadFacts | string {
  const source = templateSource(w);
  if (source === undefined) {
    return w.kind === 'Rollout' && isRecord(obj(w.raw.spec).workloadRef)
      ? 'its pod template is in spec.workloadRef, which kopek does not follow yet'
      : 'it has no pod template (spec.template)';
  }
  const declared = obj(w.raw.spec).replicas;
  if (declared !== undefined && declared !== null && !Number.isSafeInteger(declared))
    // The API server refuses it; counting it as 1 replica would give a wrong answer quietly.
    return `spec.replicas is ${JSON.stringify(declared)}, not a whole number, so it is invalid`;
  const { index } = ctx;
  const template = templateOf(w, source.template, index);
  const wkey = objectKey(w.kind, w.meta.namespace, w.meta.name);
  const pods = ctx.podsByWorkload.get(wkey) ?? [];
  const replicas = replicasOf(w, source.jobSpec, pods.length);
  const hpa = ctx.hpas.get(wkey);
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
    services: servicesFor(w, template.labels, pods, ctx.clients, ctx.services),
    cluster: ctx.cluster,
    policy: selectPolicy(ctx.policies, nsLabels, w.meta.labels),
  };
  if (w.meta.uid !== undefined) facts.uid = w.meta.uid;
  const owner = workloadOwner(w.meta);
  if (owner !== undefined) facts.owner = owner;
  if (hpa !== undefined) facts.hpa = hpa;
  const pdb = pdbFor(
    template.labels,
    effective,
    ctx.budgets.candidates(w.meta.namespace, template.labels),
  );
  if (pdb !== undefined) facts.pdb = pdb;
  if (source.jobSpec !== undefined) facts.job = jobFacts(w, source.jobSpec, ctx.jobs);
  return facts;
}

/** What every workload's facts share, computed over the whole input. */
export interface SharedFacts {
  cluster: ClusterFacts;
  /** Client pods per zone across the cluster (every Service's client weights start from it). */
  clientZones: ReadonlyMap<string, number>;
}

/** The input indexed once; its workloads' facts built on demand, all or some. */
export interface PreparedFacts {
  shared: SharedFacts;
  /**
   * The facts of the workloads whose `kind/namespace/name` key `only` holds (every workload
   * without it), with the same content and order as a build of all of them. The image
   * platforms given here replace those of the options.
   */
  build(
    only?: ReadonlySet<string>,
    imagePlatforms?: Readonly<Record<string, ImagePlatformsFact>>,
  ): BuildResult;
}

/**
 * Indexes `objects` (any mix of kinds, Lists flattened) for building facts: the part of the
 * work that reads the whole input. The operator builds only the workloads a change touched.
 */
export function prepareFacts(
  objects: readonly unknown[],
  options: BuildOptions = {},
): PreparedFacts {
  const index = indexObjects(objects);
  const policies = policiesOf(index, options);
  const cluster = clusterFacts(index.nodes.values(), kindList(index, 'Node'), options);
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
    podsByWorkload,
    clients: clientZones(pods),
    budgets: readBudgets(index),
    services: readServices(index),
    hpas: hpasByTarget(index),
    jobs: jobsByOwner(index),
    policies,
    images: imagePlatformTable(options.imagePlatforms ?? {}),
  };
  const orphans = pods.filter(
    (p) => p.workload === undefined && !SYSTEM_NAMESPACES.has(p.pod.meta.namespace),
  );
  return preparedFrom(
    ctx,
    () => indexedWorkloads(index),
    orphansWarning(orphans.map((p) => p.pod)),
  );
}

/** The well-formed SavingsPolicies of the options and of the index (a warning for each other). */
export function policiesOf(index: Index, options: BuildOptions): SavingsPolicy[] {
  return readPolicies(
    [...(options.policies ?? []), ...kindList(index, 'SavingsPolicy').map((o) => o.raw)],
    index.warnings,
  );
}

/** In the order facts come out: by namespace, kind, name. */
function byWorkloadOrder(a: K8s, b: K8s): number {
  return (
    a.meta.namespace.localeCompare(b.meta.namespace) ||
    a.kind.localeCompare(b.kind) ||
    a.meta.name.localeCompare(b.meta.name)
  );
}

/** Every workload of the index that gets facts of its own (not a Deployment's ReplicaSet), in order. */
export function indexedWorkloads(index: Index): K8s[] {
  return [...index.byKind.entries()]
    .filter(([kind]) => WORKLOAD_KINDS.has(kind))
    .flatMap(([, list]) => list)
    .filter((w) => !isOwnedIntermediate(w))
    .sort(byWorkloadOrder);
}

/** The workloads `only` names by `kind/namespace/name` key, looked up one by one, in order. */
function selectedWorkloads(index: Index, only: ReadonlySet<string>): K8s[] {
  const out: K8s[] = [];
  for (const key of only) {
    const w = index.byKey.get(key);
    if (w !== undefined && WORKLOAD_KINDS.has(w.kind) && !isOwnedIntermediate(w)) out.push(w);
  }
  return out.sort(byWorkloadOrder);
}

/** Running pods that belong to no workload, outside system namespaces: one warning for all. */
export function orphansWarning(orphans: readonly K8s[]): string[] {
  // Said after the workloads' own warnings, as it always was.
  return orphans.length === 0
    ? []
    : [
        `${orphans.length} pod${orphans.length === 1 ? ' has' : 's have'} no owning workload (bare pods get no recommendation): ${orphans
          .slice(0, 5)
          .map(describe)
          .join(', ')}${orphans.length > 5 ? ', …' : ''}`,
      ];
}

/**
 * The facts of an indexed input, built on demand: of every workload (`workloads()`), or of the
 * ones a build names, found by key so that building a few costs the same however large the input.
 */
export function preparedFrom(
  ctx: Context,
  workloads: () => readonly K8s[],
  trailingWarnings: readonly string[],
): PreparedFacts {
  return {
    shared: { cluster: ctx.cluster, clientZones: ctx.clients.total },
    build: (only, imagePlatforms) =>
      buildWorkloads(
        only === undefined ? workloads() : selectedWorkloads(ctx.index, only),
        imagePlatforms === undefined ? ctx : { ...ctx, images: imagePlatformTable(imagePlatforms) },
        trailingWarnings,
      ),
  };
}

function buildWorkloads(
  workloads: readonly K8s[],
  shared: Context,
  trailingWarnings: readonly string[],
): BuildResult {
  const facts: WorkloadFacts[] = [];
  const skipped: SkippedWorkload[] = [];
  // Each build gets its own warnings, so building again repeats none.
  const warnings = [...shared.index.warnings];
  const ctx: Context = { ...shared, index: { ...shared.index, warnings } };
  for (const w of workloads) {
    const skip = (reason: string) =>
      skipped.push({ namespace: w.meta.namespace, kind: w.kind, name: w.meta.name, reason });
    if (w.meta.namespace === '') {
      warnings.push(`${describe(w)} has no metadata.namespace; skipped`);
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
      warnings.push(`${describe(w)}: ${built}; skipped`);
      continue;
    }
    facts.push(built);
  }
  warnings.push(...trailingWarnings);
  return { facts, skipped, warnings };
}

/**
 * Builds the facts of every workload among `objects` (any mix of kinds, Lists flattened).
 * Deterministic: the same objects and options give the same facts in the same order.
 */
export function factsFromObjects(
  objects: readonly unknown[],
  options: BuildOptions = {},
): BuildResult {
  return prepareFacts(objects, options).build();
}
