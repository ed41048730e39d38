/**
 * `kopek patch`: the changes Apply mode would make (recommender/apply/commit.ts), written as the
 * files a person commits to a GitOps repository. Each change is a strategic-merge patch that
 * names the object and holds only the fields that change, each as it must be afterwards: lists
 * (tolerations, node selector terms, preferred terms, spreads) whole, because strategic merge
 * replaces them, and `null` for what must go, because it merges maps key by key.
 */
import { stringify } from 'yaml';
import { InputError, buildFacts, withPlacementScore } from './analyze.ts';
import { EXIT_OK, UsageError, loadInput, parseInputArgs, type CliIO } from './input.ts';
import {
  OPTIMIZATIONS,
  type ActionSavings,
  type Optimization,
  type WorkloadKind,
} from '../../recommender/api/v1alpha1.ts';
import { planCommit } from '../../recommender/apply/commit.ts';
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

/** kopek patch: no workload had a change to print (each one's reason is on stderr). */
export const EXIT_NOTHING_TO_CHANGE = 4;

export const PATCH_HELP = `kopek patch — the changes Apply mode would make, as files to commit to a GitOps repository.

Usage:
  kopek patch -f FILE [-f FILE ...] [--workload NS/KIND/NAME] [--action Spot,Arm64,CrossZone]
              [-o yaml|kustomize] [-n NS] [--image-platforms FILE] [--registry-lookup] [--live-prices]
              [--region REGION] [--prometheus-url URL ...] [-q]

  Reads the same dumps as kopek analyze and, for each workload, takes the actions Apply mode
  would take: those whose verdict is Recommended, or Possible with nothing required but what the
  patch itself does, and that kopek applies to that kind (DaemonSets: Arm64 only; Jobs and
  ReplicaSets: none; workloads another controller owns: none, change their owner). Unlike Apply
  mode it ignores the policy's mode and spec.apply.actions, approvals and GitOps marks: it is
  for the workloads Argo CD or Flux manage, which Apply mode leaves alone. The change is the one
  Apply mode would patch, computed over the fields as the dump holds them.

  For Arm64, kopek must know the images' platforms: pass --image-platforms or --registry-lookup
  (without them arm64 is Unknown and no Arm64 change is printed). CrossZone prints the zone
  spread the pod template needs, if any, and a patch of each Service whose traffic must stay in
  its zone (spec.trafficDistribution, or the topology-mode annotation before Kubernetes 1.31).

Options (and every input option of kopek analyze: -n, --image-platforms, --registry-lookup,
--insecure-registries, --live-prices, --region, --prometheus-url and the traffic flags):
  -f, --filename FILE       a dump to read; repeat for several; "-" reads standard input
      --workload NS/KIND/NAME
                            only this workload (kind as kubectl names it, any case); an error
                            lists close names when the dump has none by that name
      --action LIST         only these actions, comma-separated: Spot, Arm64, CrossZone
                            (default: all three)
  -o, --output FORMAT       yaml (default): per workload a comment line (what changes, the
                            monthly saving) and a strategic-merge patch: apiVersion, kind,
                            metadata.name/namespace and the pod spec's nodeSelector, affinity,
                            tolerations and topologySpreadConstraints that change, as they must be
                            afterwards (lists whole, null for what goes); documents separated by
                            ---. Apply one with kubectl patch --type=strategic --patch-file
                            (--type=merge for an Argo Rollout), or commit it as a kustomize patch.
                            kustomize: a patches: list to put in a kustomization.yaml, each entry
                            with its target (group, version, kind, name, namespace) and the same
                            patch inline. Drop the namespace lines of a target when the
                            kustomization sets the namespace itself.
  -q, --quiet               do not print warnings (what each workload does not change is still
                            said on stderr)
  -h, --help                this help

Exit codes:
  0  at least one patch was printed (workloads with nothing to change are named on stderr)
  1  usage error: unknown option, missing or bad value (--workload, --action, -o)
  2  an input could not be used (as for kopek analyze), or --workload names a workload the dump
     does not hold or kopek does not analyse (the error lists close names)
  3  internal error (a bug in kopek; run with KOPEK_DEBUG=1 for the stack trace and report it)
  4  nothing to change: no workload has a change to print (stderr says why for each)
`;

const PATCH_OUTPUTS = ['yaml', 'kustomize'] as const;

/** `kopek patch`: what Apply mode would change, as the files a person commits to Git. */
export async function patchCommand(argv: readonly string[], io: CliIO): Promise<number> {
  const { input: args, output = 'yaml', workload, action } = parseInputArgs('patch', argv);
  if (!(PATCH_OUTPUTS as readonly string[]).includes(output))
    throw new UsageError(`-o ${output}: the output format must be yaml or kustomize`);
  const wanted = workload === undefined ? undefined : parseWorkloadName(workload);
  if (workload !== undefined && wanted === undefined)
    throw new UsageError(
      `--workload ${workload}: expected namespace/kind/name, e.g. shop/Deployment/web`,
    );
  const parsedActions = action === undefined ? undefined : parseActions(action);
  if (parsedActions !== undefined && 'unknown' in parsedActions)
    throw new UsageError(
      `--action ${action ?? ''}: expected a comma-separated list of ${OPTIMIZATIONS.join(', ')}`,
    );
  if (args.help) {
    io.stdout(PATCH_HELP);
    return EXIT_OK;
  }
  const { objects, options, prices, traffic, warnings } = await loadInput(args, io);
  const built = buildFacts(objects, options, traffic);
  warnings.push(...built.warnings);
  const workloads = wanted === undefined ? built.facts : selectWorkload(built, wanted);
  const { dumped, services } = indexDump(objects);
  const documents: PatchDocument[] = [];
  const notes: string[] = [];
  for (const facts of workloads) {
    const key = workloadKey(facts);
    const object = dumped.get(key) ?? {};
    const plan = planCommit({
      facts: withPlacementScore(facts, prices),
      prices: prices.book(),
      workload: object,
      services: services.get(facts.namespace) ?? new Map(),
      ...(parsedActions !== undefined ? { actions: parsedActions.actions } : {}),
    });
    if ('nothing' in plan) {
      notes.push(`${key}: ${plan.nothing}`);
      continue;
    }
    documents.push(
      ...patchDocuments({
        apiVersion: typeof object.apiVersion === 'string' ? object.apiVersion : 'apps/v1',
        kind: facts.kind,
        name: facts.name,
        namespace: facts.namespace,
        ...plan,
      }),
    );
  }
  if (!args.quiet) for (const w of warnings) io.stderr(`warning: ${w}\n`);
  for (const note of notes) io.stderr(`${note}\n`);
  if (documents.length === 0) {
    io.stderr('kopek: nothing to change\n');
    return EXIT_NOTHING_TO_CHANGE;
  }
  io.stdout(output === 'kustomize' ? renderKustomize(documents) : renderYaml(documents));
  return EXIT_OK;
}
