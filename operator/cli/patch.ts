/**
 * `kopek patch`: the changes Apply mode would make (recommender/apply/commit.ts), written as the
 * files a person commits to a GitOps repository. Each change is a strategic-merge patch that
 * names the object and holds only the fields that change, each as it must be afterwards: lists
 * (tolerations, node selector terms, preferred terms, spreads) whole, because strategic merge
 * replaces them, and `null` for what must go, because it merges maps key by key.
 */
import { stringify } from 'yaml';
import { InputError } from './analyze.ts';
import {
  OPTIMIZATIONS,
  type ActionSavings,
  type Optimization,
  type WorkloadKind,
} from '../../recommender/api/v1alpha1.ts';
import { servicesToChange } from '../../recommender/apply/operations.ts';
import {
  POD_FIELDS,
  podSpecSegments,
  sameValue,
  type PlacementState,
  type PodPlacement,
} from '../../recommender/apply/placement.ts';
import { ANNOTATION_TOPOLOGY_MODE } from '../../recommender/facts.ts';
import type { BuildResult } from '../../recommender/facts-from-objects.ts';
import type { WorkloadFacts } from '../../recommender/facts.ts';
import { flattenLists } from '../../recommender/objects/index.ts';
import { obj } from '../../recommender/objects/read.ts';
import { formatUSD } from '../../recommender/pricing.ts';
import { listOf } from '../../recommender/reasons.ts';

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One workload's change, as planCommit gives it, and where it lives. */
export interface WorkloadChange {
  apiVersion: string;
  kind: WorkloadKind;
  name: string;
  namespace: string;
  actions: readonly Optimization[];
  previous: PlacementState;
  planned: PlacementState;
  savings: readonly ActionSavings[];
}

/** One object to patch, with the comment that says why. */
export interface PatchDocument {
  comment: string;
  target: { apiVersion: string; kind: string; name: string; namespace: string };
  patch: Obj;
}

/**
 * `planned` with `null` for every key of `previous` it no longer has, at every depth of nested
 * maps: under strategic merge the result is exactly `planned`. Lists are taken whole.
 */
function replacingMap(previous: unknown, planned: Obj): Obj {
  const out: Obj = {};
  for (const [key, value] of Object.entries(planned))
    out[key] =
      isObj(value) && isObj(previous) ? replacingMap(previous[key], value) : structuredClone(value);
  if (isObj(previous))
    for (const key of Object.keys(previous)) if (!(key in planned)) out[key] = null;
  return out;
}

/** The pod spec part of the patch: only the placement fields that change, as they must be. */
export function podSpecPatch(previous: PodPlacement, planned: PodPlacement): Obj {
  const out: Obj = {};
  for (const field of POD_FIELDS) {
    const before = previous[field];
    const after = planned[field];
    if (sameValue(before, after)) continue;
    // A field that goes is null: its keys each set to null would leave an empty map behind.
    if (after === undefined) out[field] = null;
    else out[field] = isObj(after) ? replacingMap(before, after) : structuredClone(after);
  }
  return out;
}

/** `leaf` under the path `segments` (spec, template, spec), as nested maps. */
function nested(segments: readonly string[], leaf: Obj): Obj {
  return segments.reduceRight<Obj>((inner, segment) => ({ [segment]: inner }), leaf);
}

function dollars(usd: string | number): string {
  return `$${typeof usd === 'number' ? formatUSD(usd) : usd}/mo`;
}

function workloadComment(change: WorkloadChange): string {
  const total = change.savings.reduce((sum, s) => sum + Number(s.monthlySavingsUSD), 0);
  const parts =
    change.savings.length > 1
      ? ` (${change.savings.map((s) => `${s.action} ${dollars(s.monthlySavingsUSD)}`).join(', ')})`
      : '';
  return (
    `${change.namespace}/${change.kind}/${change.name}: ${listOf(change.actions)}, ` +
    `saves ${dollars(total)}${parts}`
  );
}

/**
 * The objects to patch for one workload's change: the workload (its pod template), then each
 * Service whose traffic settings change.
 */
export function patchDocuments(change: WorkloadChange): PatchDocument[] {
  const { apiVersion, kind, name, namespace } = change;
  const docs: PatchDocument[] = [];
  const podSpec = podSpecPatch(change.previous.podSpec, change.planned.podSpec);
  if (Object.keys(podSpec).length > 0)
    docs.push({
      comment: workloadComment(change),
      target: { apiVersion, kind, name, namespace },
      patch: {
        apiVersion,
        kind,
        metadata: { name, namespace },
        ...nested(podSpecSegments(kind), podSpec),
      },
    });
  for (const service of servicesToChange(change.previous, change.planned)) {
    const patch: Obj = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: service.name, namespace },
    };
    if (!sameValue(service.from.topologyMode, service.to.topologyMode))
      (patch.metadata as Obj).annotations = {
        [ANNOTATION_TOPOLOGY_MODE]: service.to.topologyMode ?? null,
      };
    if (!sameValue(service.from.trafficDistribution, service.to.trafficDistribution))
      patch.spec = { trafficDistribution: service.to.trafficDistribution ?? null };
    docs.push({
      comment: `${namespace}/Service/${service.name}: keeps traffic in its zone (CrossZone of ${namespace}/${kind}/${name})`,
      target: { apiVersion: 'v1', kind: 'Service', name: service.name, namespace },
      patch,
    });
  }
  return docs;
}

const YAML_OPTIONS = { lineWidth: 0, version: '1.1', aliasDuplicateObjects: false } as const;

/** `-o yaml`: the patches as YAML documents separated by `---`, each after its comment line. */
export function renderYaml(docs: readonly PatchDocument[]): string {
  return docs.map((d) => `# ${d.comment}\n${stringify(d.patch, YAML_OPTIONS)}`).join('---\n');
}

/** A kustomize patch target: group, version, kind, name and namespace of the object. */
function kustomizeTarget(target: PatchDocument['target']): Obj {
  const slash = target.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : target.apiVersion.slice(0, slash);
  const version = target.apiVersion.slice(slash + 1);
  return {
    ...(group === '' ? {} : { group }),
    version,
    kind: target.kind,
    name: target.name,
    namespace: target.namespace,
  };
}

/**
 * `-o kustomize`: a `patches:` list for a kustomization.yaml, each entry with its `target:` and
 * the strategic-merge patch inline (one file to merge, nothing else to create).
 */
export function renderKustomize(docs: readonly PatchDocument[]): string {
  const entries = docs.map((d) => {
    const entry = stringify(
      [{ target: kustomizeTarget(d.target), patch: stringify(d.patch, YAML_OPTIONS) }],
      YAML_OPTIONS,
    );
    return `  # ${d.comment}\n${entry.replace(/^(?=.)/gm, '  ')}`;
  });
  return `patches:\n${entries.join('')}`;
}

/** A workload named on the command line: namespace/kind/name. */
export interface WorkloadName {
  namespace: string;
  kind: string;
  name: string;
}

/** Reads `ns/kind/name`; undefined when it is not of that shape. */
export function parseWorkloadName(text: string): WorkloadName | undefined {
  const parts = text.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const [namespace = '', kind = '', name = ''] = parts;
  return { namespace, kind, name };
}

/** Same workload; kinds compare without case, as kubectl takes them (deployment, Deployment). */
export function sameWorkload(a: WorkloadName, b: WorkloadName): boolean {
  return (
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.kind.toLowerCase() === b.kind.toLowerCase()
  );
}

/** Reads `--action Spot,Arm64`; the names it does not know, when there are some. */
export function parseActions(text: string): { actions: Optimization[] } | { unknown: string[] } {
  const names = text
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const actions: Optimization[] = [];
  const unknown: string[] = [];
  for (const name of names) {
    const action = OPTIMIZATIONS.find((o) => o.toLowerCase() === name.toLowerCase());
    if (action === undefined) unknown.push(name);
    else if (!actions.includes(action)) actions.push(action);
  }
  return unknown.length > 0 || actions.length === 0 ? { unknown } : { actions };
}

/** Edit distance between two strings (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * Up to `limit` of `candidates` (ns/Kind/name) close to `wanted`: the same name elsewhere, or a
 * few typing mistakes away; closest first.
 */
export function closeNames(wanted: string, candidates: readonly string[], limit = 5): string[] {
  const target = wanted.toLowerCase();
  const name = target.split('/').at(-1) ?? target;
  return candidates
    .map((candidate) => {
      const c = candidate.toLowerCase();
      const distance = c.split('/').at(-1) === name ? 0 : editDistance(target, c);
      return { candidate, distance };
    })
    .filter((c) => c.distance <= Math.max(2, Math.floor(target.length / 4)))
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, limit)
    .map((c) => c.candidate);
}

/**
 * The facts of the workload named by --workload. Throws InputError when the dump has none by
 * that name (listing close names) or kopek does not analyse it (saying why).
 */
export function selectWorkload(built: BuildResult, wanted: WorkloadName): WorkloadFacts[] {
  const found = built.facts.filter((f) => sameWorkload(f, wanted));
  if (found.length > 0) return found;
  const skipped = built.skipped.find((w) => sameWorkload(w, wanted));
  if (skipped !== undefined)
    throw new InputError(`${workloadKey(skipped)}: kopek does not analyse it: ${skipped.reason}`);
  const close = closeNames(workloadKey(wanted), built.facts.map(workloadKey));
  throw new InputError(
    `${workloadKey(wanted)}: no such workload in the dump` +
      (close.length > 0 ? `; did you mean ${close.join(', ')}?` : ''),
  );
}

/** ns/Kind/name. */
export function workloadKey(w: WorkloadName): string {
  return `${w.namespace}/${w.kind}/${w.name}`;
}

/** The dumped objects by ns/Kind/name, and the Services by namespace, then name. */
export function indexDump(objects: readonly unknown[]): {
  dumped: Map<string, Obj>;
  services: Map<string, Map<string, Obj>>;
} {
  const dumped = new Map<string, Obj>();
  const services = new Map<string, Map<string, Obj>>();
  for (const o of flattenLists(objects)) {
    const meta = obj(o.metadata);
    if (typeof o.kind !== 'string' || typeof meta.name !== 'string') continue;
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
    dumped.set(workloadKey({ namespace, kind: o.kind, name: meta.name }), o);
    if (o.kind === 'Service')
      services.set(
        namespace,
        (services.get(namespace) ?? new Map<string, Obj>()).set(meta.name, o),
      );
  }
  return { dumped, services };
}
