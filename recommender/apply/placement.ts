/**
 * The fields Apply changes, read from live objects exactly as the API server returned them:
 * the pod spec's nodeSelector, affinity, tolerations and topologySpreadConstraints, and each
 * Service's spec.trafficDistribution and topology-mode annotation. A field that is absent stays
 * absent (undefined), so a revert can remove what kopek added and restore what was there.
 */
import type { WorkloadKind } from '../api/v1alpha1.ts';
import { canonicalJson } from '../canonical.ts';
import { ANNOTATION_TOPOLOGY_MODE } from '../facts.ts';

export const POD_FIELDS = [
  'nodeSelector',
  'affinity',
  'tolerations',
  'topologySpreadConstraints',
] as const;
export type PodField = (typeof POD_FIELDS)[number];

/** The pod spec's placement fields; an absent field is absent here too. */
export type PodPlacement = Partial<Record<PodField, unknown>>;

/** One Service's traffic settings that the cross-zone fix changes. */
export interface ServicePlacement {
  name: string;
  trafficDistribution?: unknown;
  /** The service.kubernetes.io/topology-mode annotation. */
  topologyMode?: unknown;
}

/** Everything one apply changes, before or after. */
export interface PlacementState {
  podSpec: PodPlacement;
  services: ServicePlacement[];
}

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The path of the pod spec inside a workload of this kind, as JSON-pointer segments. */
export function podSpecSegments(kind: WorkloadKind): string[] {
  return kind === 'CronJob'
    ? ['spec', 'jobTemplate', 'spec', 'template', 'spec']
    : ['spec', 'template', 'spec'];
}

/** The JSON pointer of the pod spec, e.g. /spec/template/spec. */
export function podSpecPointer(kind: WorkloadKind): string {
  return `/${podSpecSegments(kind).join('/')}`;
}

/** The pod spec of a live workload, or undefined when it has none. */
export function podSpecOf(kind: WorkloadKind, workload: unknown): Obj | undefined {
  let at: unknown = workload;
  for (const segment of podSpecSegments(kind)) at = isObj(at) ? at[segment] : undefined;
  return isObj(at) ? at : undefined;
}

/** The placement fields of a pod spec (copied, so later edits of the object do not leak in). */
export function readPodPlacement(podSpec: Obj): PodPlacement {
  const out: PodPlacement = {};
  for (const field of POD_FIELDS)
    if (podSpec[field] !== undefined && podSpec[field] !== null)
      out[field] = structuredClone(podSpec[field]);
  return out;
}

/** A Service's traffic settings. */
export function readServicePlacement(service: unknown): ServicePlacement {
  const s = isObj(service) ? service : {};
  const metadata = isObj(s.metadata) ? s.metadata : {};
  const spec = isObj(s.spec) ? s.spec : {};
  const annotations = isObj(metadata.annotations) ? metadata.annotations : {};
  const out: ServicePlacement = { name: typeof metadata.name === 'string' ? metadata.name : '' };
  if (spec.trafficDistribution !== undefined && spec.trafficDistribution !== null)
    out.trafficDistribution = spec.trafficDistribution;
  if (annotations[ANNOTATION_TOPOLOGY_MODE] !== undefined)
    out.topologyMode = annotations[ANNOTATION_TOPOLOGY_MODE];
  return out;
}

/** Same content, whatever the order of object keys (the API server sorts map keys). */
export function sameValue(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The pod fields whose values differ between two placements. */
export function changedPodFields(a: PodPlacement, b: PodPlacement): PodField[] {
  return POD_FIELDS.filter((field) => !sameValue(a[field], b[field]));
}

/** Names of the differences between two states ("affinity", "Service web trafficDistribution"). */
export function differences(a: PlacementState, b: PlacementState): string[] {
  const out: string[] = changedPodFields(a.podSpec, b.podSpec);
  const names = new Set([...a.services, ...b.services].map((s) => s.name));
  for (const name of [...names].sort()) {
    const x = a.services.find((s) => s.name === name) ?? { name };
    const y = b.services.find((s) => s.name === name) ?? { name };
    if (!sameValue(x.trafficDistribution, y.trafficDistribution))
      out.push(`Service ${name} trafficDistribution`);
    if (!sameValue(x.topologyMode, y.topologyMode))
      out.push(`Service ${name} ${ANNOTATION_TOPOLOGY_MODE}`);
  }
  return out;
}

export function sameState(a: PlacementState, b: PlacementState): boolean {
  return differences(a, b).length === 0;
}

/** The state as stored in status.applied (previousState, appliedState). */
export function serializeState(state: PlacementState): string {
  return JSON.stringify(state);
}

/**
 * Reads a stored state back; undefined when it is not one (a person edited the status), so the
 * caller stops rather than restore something it cannot trust.
 */
export function parseState(text: string | undefined): PlacementState | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObj(parsed) || !isObj(parsed.podSpec) || !Array.isArray(parsed.services)) return undefined;
  if (Object.keys(parsed.podSpec).some((key) => !(POD_FIELDS as readonly string[]).includes(key)))
    return undefined;
  const services: ServicePlacement[] = [];
  for (const service of parsed.services as unknown[]) {
    if (!isObj(service) || typeof service.name !== 'string') return undefined;
    services.push(service as unknown as ServicePlacement);
  }
  return { podSpec: parsed.podSpec, services };
}
